// The pixelsmith playground: a page that calls the public OpenAI-compatible API, nothing else.
// No build step: a plain ES module served with the package. URLs are relative to the page
// (/playground), so the page works behind a proxy that mounts the server under a prefix.

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "pixelsmith.apiKey";
// sessionStorage: the key lives as long as this tab, and no other page of the origin (such as
// the API docs, which load scripts from a CDN) can read it.
const keyStore = window.sessionStorage;

const edit = {
  file: null, // the uploaded File, sent as is
  image: null, // HTMLImageElement of it
  mask: null, // canvas at the image's own size: opaque = keep, transparent = repaint
  painted: false, // without strokes no mask is sent: the whole image is redrawn
};

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(body, status) {
  const error = (body && body.error) || {};
  $("error-message").textContent = error.message || `Request failed (HTTP ${status}).`;
  $("error-param").textContent = error.param ? `parameter: ${error.param}` : "";
  $("error").hidden = false;
  setStatus("");
}

function clearOutput() {
  $("error").hidden = true;
  $("previews").replaceChildren();
  $("results").replaceChildren();
}

async function loadModels() {
  let response;
  try {
    response = await fetch("v1/models", { headers: authHeaders() });
  } catch (error) {
    showError({ error: { message: `Could not reach the server: ${error.message}` } });
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(body, response.status);
    return;
  }
  $("error").hidden = true; // a key entered after a 401: the error is resolved
  const select = $("model");
  select.replaceChildren(
    ...body.data.map((model) => new Option(model.id, model.id)),
  );
  // Today's name, which takes every quality tier the page offers.
  if ([...select.options].some((option) => option.value === "gpt-image-2.5-flare")) {
    select.value = "gpt-image-2.5-flare";
  }
}

// The request fields, as the official clients send them; extensions only when set.
function requestFields() {
  const fields = {
    prompt: $("prompt").value,
    model: $("model").value,
    size: $("size").value.trim() || "auto",
    quality: $("quality").value,
    n: Number($("n").value || 1),
    output_format: $("output-format").value,
    background: $("background").value,
  };
  if ($("seed").value !== "") fields.seed = Number($("seed").value);
  if ($("negative-prompt").value.trim()) fields.negative_prompt = $("negative-prompt").value.trim();
  const partials = Number($("partial-images").value);
  if (partials > 0) {
    fields.stream = true;
    fields.partial_images = partials;
  }
  return fields;
}

function dataUrl(b64, format) {
  return `data:image/${format};base64,${b64}`;
}

function addPreview(event) {
  const img = document.createElement("img");
  img.className = "preview";
  img.src = dataUrl(event.b64_json, event.output_format);
  img.dataset.index = event.partial_image_index;
  img.alt = `preview ${event.partial_image_index + 1}`;
  $("previews").append(img);
  setStatus(`Preview ${event.partial_image_index + 1} received…`);
}

function addResult(b64, format, seed, index) {
  const card = document.createElement("figure");
  card.className = "result";
  const img = document.createElement("img");
  img.src = dataUrl(b64, format);
  img.alt = `image ${index + 1}`;
  const caption = document.createElement("figcaption");
  const link = document.createElement("a");
  link.href = img.src;
  link.download = `pixelsmith-${seed ?? index}.${format === "jpeg" ? "jpg" : format}`;
  link.textContent = "Download";
  caption.append(seed === undefined ? "" : `seed ${seed} `, link);
  if (seed !== undefined) card.dataset.seed = seed;
  card.append(img, caption);
  $("results").append(card);
}

// Server-sent events from a fetch body: `event:` + one `data:` line, a blank line after each.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n"); // a proxy may send CRLF line ends
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        showError({ error: { message: "The server sent an event that is not JSON." } });
        continue;
      }
      onEvent(event);
    }
  }
}

async function send(url, init, outputFormat) {
  const started = performance.now();
  const response = await fetch(url, init);
  if (!response.ok) {
    showError(await response.json().catch(() => ({})), response.status);
    return;
  }
  const type = response.headers.get("content-type") || "";
  let count = 0;
  if (type.startsWith("text/event-stream")) {
    let failed = false;
    await readEvents(response, (event) => {
      const type = String(event.type || "");
      if (event.error) {
        failed = true;
        showError(event);
      } else if (type.endsWith(".partial_image")) {
        addPreview(event);
      } else if (type.endsWith(".completed")) {
        addResult(event.b64_json, event.output_format, event.seed, count++);
      }
    });
    if (!count && !failed) setStatus("The stream ended without an image.");
  } else {
    const body = await response.json();
    body.data.forEach((item, index) => addResult(item.b64_json, body.output_format || outputFormat, item.seed, index));
    count = body.data.length;
  }
  if (count) setStatus(`${count} image${count > 1 ? "s" : ""} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function submit(event) {
  event.preventDefault();
  clearOutput();
  const fields = requestFields();
  $("submit").disabled = true;
  setStatus("Working…");
  try {
    if (mode() === "generate") {
      await send(
        "v1/images/generations",
        {
          method: "POST",
          headers: { "Content-Type": "application/json", ...authHeaders() },
          body: JSON.stringify(fields),
        },
        fields.output_format,
      );
    } else {
      if (!edit.file) {
        showError({ error: { message: "Choose an image to edit first.", param: "image" } });
        return;
      }
      const form = new FormData();
      form.append("image", edit.file, edit.file.name);
      if (edit.painted) {
        const mask = await new Promise((resolve) => edit.mask.toBlob(resolve, "image/png"));
        form.append("mask", mask, "mask.png");
      }
      for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
      await send("v1/images/edits", { method: "POST", headers: authHeaders(), body: form }, fields.output_format);
    }
  } catch (error) {
    showError({ error: { message: `Could not reach the server: ${error.message}` } });
  } finally {
    $("submit").disabled = false;
  }
}

// --- Edit mode: the image, and a mask painted with a brush ---------------------------------

function drawEditCanvas() {
  const canvas = $("edit-canvas");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(edit.image, 0, 0, canvas.width, canvas.height);
  // The painted area, shown in translucent red: where the mask is transparent.
  const overlay = document.createElement("canvas");
  overlay.width = edit.mask.width;
  overlay.height = edit.mask.height;
  const overlayContext = overlay.getContext("2d");
  overlayContext.fillStyle = "rgba(230, 30, 60, 0.5)";
  overlayContext.fillRect(0, 0, overlay.width, overlay.height);
  overlayContext.globalCompositeOperation = "destination-out";
  overlayContext.drawImage(edit.mask, 0, 0);
  context.drawImage(overlay, 0, 0, canvas.width, canvas.height);
}

function resetMask() {
  edit.painted = false;
  const context = edit.mask.getContext("2d");
  context.globalCompositeOperation = "source-over";
  context.fillStyle = "#000";
  context.fillRect(0, 0, edit.mask.width, edit.mask.height);
  drawEditCanvas();
}

async function loadEditImage(file) {
  const image = new Image();
  const url = URL.createObjectURL(file);
  image.src = url;
  try {
    await image.decode();
  } catch {
    showError({ error: { message: `${file.name} is not an image this browser can open.`, param: "image" } });
    return;
  } finally {
    URL.revokeObjectURL(url); // decoded: the pixels stay with the element
  }
  edit.file = file;
  edit.image = image;
  edit.mask = document.createElement("canvas");
  edit.mask.width = image.naturalWidth;
  edit.mask.height = image.naturalHeight;
  // The drawing buffer at most 512 px on its longer side; CSS may shrink it further.
  const scale = Math.min(1, 512 / Math.max(image.naturalWidth, image.naturalHeight));
  const canvas = $("edit-canvas");
  canvas.width = Math.round(image.naturalWidth * scale);
  canvas.height = Math.round(image.naturalHeight * scale);
  resetMask();
}

function paintAt(event, from) {
  // Displayed size, not the drawing buffer's: the layout may scale the canvas.
  const rect = $("edit-canvas").getBoundingClientRect();
  const scale = rect.width / edit.mask.width; // screen pixels per image pixel
  const x = (event.clientX - rect.left) / scale;
  const y = (event.clientY - rect.top) / scale;
  const context = edit.mask.getContext("2d");
  context.globalCompositeOperation = "destination-out"; // transparent = repaint here
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = Number($("brush-size").value) / scale; // the brush size is on screen
  context.beginPath();
  context.moveTo(...(from || [x, y]));
  context.lineTo(x, y);
  context.stroke();
  edit.painted = true;
  drawEditCanvas();
  return [x, y];
}

function setUpBrush() {
  const canvas = $("edit-canvas");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (!edit.mask) return;
    canvas.setPointerCapture(event.pointerId);
    last = paintAt(event, null);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last) last = paintAt(event, last);
  });
  const stop = () => {
    last = null;
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
}

function setUp() {
  $("api-key").value = keyStore.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    keyStore.setItem(KEY_STORAGE, $("api-key").value.trim());
    loadModels();
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => {
      const editing = mode() === "edit";
      $("edit-panel").hidden = !editing;
      $("submit").textContent = editing ? "Edit" : "Generate";
    });
  }
  $("image-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) loadEditImage(file);
  });
  $("clear-mask").addEventListener("click", () => edit.mask && resetMask());
  setUpBrush();
  $("request-form").addEventListener("submit", submit);
  loadModels();
  document.body.dataset.ready = "true";
}

setUp();
