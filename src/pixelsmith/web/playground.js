// The pixelsmith playground: a page that calls the public OpenAI-compatible API, nothing else.
// No build step: a plain ES module served with the package. URLs are relative to the page
// (/playground), so the page works behind a proxy that mounts the server under a prefix.

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "pixelsmith.apiKey";
const HISTORY_STORAGE = "pixelsmith.history";
const HISTORY_LIMIT = 24;
// sessionStorage: the key and the history live as long as this tab, and no other page of the
// origin (such as the API docs, which load scripts from a CDN) can read them.
const tabStore = window.sessionStorage;
// The width below which the form and the results are stacked (the CSS's breakpoint): there the
// results start below the fold, so the page scrolls to them.
const narrowScreen = window.matchMedia("(max-width: 800px)");

const state = {
  models: new Map(), // name -> its rules, from playground/models.json (the server's own)
  controller: null, // the AbortController of the request in flight
  lastRequest: null, // what was sent last: the code panel writes it out
  language: "python", // the code panel's language
  history: [], // this tab's images, newest first
};

const edit = {
  file: null, // the uploaded File, sent as is
  image: null, // HTMLImageElement of it
  mask: null, // canvas at the image's own size: opaque = keep, transparent = repaint
  undo: [], // ImageData of the mask before each stroke, newest last
  eraser: false, // strokes restore the image (opaque) instead of marking it for repainting
  cursor: { x: 0, y: 0 }, // the keyboard brush, in image pixels
  showCursor: false, // drawn while the keyboard drives the brush
  maskUrl: null, // blob: URL of the mask last sent, for the code panel's download link
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

// --- Errors: the API's envelope, with the field its `param` names marked ---------------------

// The form field each request parameter comes from.
const PARAM_FIELDS = {
  prompt: "prompt",
  model: "model",
  size: "size",
  quality: "quality",
  n: "n",
  output_format: "output-format",
  background: "background",
  partial_images: "partial-images",
  stream: "partial-images", // the page streams when previews are on
  seed: "seed",
  num_inference_steps: "steps",
  guidance_scale: "guidance",
  negative_prompt: "negative-prompt",
  image: "image-file",
  mask: "edit-canvas",
};

function fieldFor(param) {
  // Multipart errors may name an element of a list: "image[0]" is the image field.
  const name = String(param || "").replace(/\[.*$/, "");
  return PARAM_FIELDS[name] ? $(PARAM_FIELDS[name]) : null;
}

function showError(body, status) {
  const error = (body && body.error) || {};
  // Shown before its text is set: screen readers announce an alert's content as it changes.
  $("error").hidden = false;
  $("error-message").textContent = error.message || `Request failed (HTTP ${status}).`;
  $("error-param").textContent = error.param ? `parameter: ${error.param}` : "";
  setStatus("");
  const field = fieldFor(error.param);
  if (field && !field.disabled && !field.closest("[hidden]")) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", `${field.dataset.describedby || ""} error`.trim());
    field.closest("details")?.setAttribute("open", "");
    field.focus(); // the keyboard lands where the fix is; the field's description is the error
  } else {
    $("error").focus();
  }
}

function clearError() {
  $("error").hidden = true;
  for (const field of document.querySelectorAll("[aria-invalid=true]")) {
    field.removeAttribute("aria-invalid");
    restoreDescription(field);
  }
}

function restoreDescription(field) {
  if (field.dataset.describedby) field.setAttribute("aria-describedby", field.dataset.describedby);
  else field.removeAttribute("aria-describedby");
}

// --- Model names and their rules ---------------------------------------------------------------

async function loadModels() {
  let response;
  try {
    response = await fetch("playground/models.json");
  } catch (error) {
    showError({ error: { message: `Could not reach the server: ${error.message}` } });
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(body, response.status);
    return;
  }
  state.models = new Map(body.models.map((rules) => [rules.id, rules]));
  const select = $("model");
  select.replaceChildren(...body.models.map((rules) => new Option(rules.id, rules.id)));
  select.value = body.default;
  applyModelRules();
}

function rulesFor(name) {
  return state.models.get(name);
}

function currentRules() {
  return rulesFor($("model").value);
}

// Makes the form offer only what the chosen name allows: its sizes, qualities, how many images,
// and previews only for names that stream. The server stays the judge of everything else.
function applyModelRules() {
  const rules = currentRules();
  if (!rules) return;
  $("sizes").replaceChildren(...rules.sizes.map((size) => new Option(size, size)));
  const size = $("size").value.trim();
  if (!rules.sizes.includes(size) && !(rules.other_sizes && /^[0-9]+x[0-9]+$/.test(size))) {
    $("size").value = rules.default_size; // e.g. dall-e-3 takes no `auto`
  }
  $("size-hint").textContent = rules.other_sizes
    ? `Sizes: ${rules.sizes.join(", ")}, or another WIDTHxHEIGHT the model can make.`
    : `Sizes for ${rules.id}: ${rules.sizes.join(", ")}.`;

  const quality = $("quality").value;
  $("quality").replaceChildren(...rules.qualities.map((name) => new Option(name, name)));
  $("quality").value = rules.qualities.includes(quality) ? quality : rules.qualities[0];

  $("n").max = rules.max_n;
  if (Number($("n").value) > rules.max_n) $("n").value = rules.max_n;
  // A name that cannot stream shows previews "off" (as it will be sent); the choice comes back
  // with the next name that can.
  const previews = $("partial-images");
  if (!rules.stream && !previews.disabled) {
    previews.dataset.kept = previews.value;
    previews.value = "0";
  } else if (rules.stream && previews.disabled) {
    previews.value = previews.dataset.kept || "0";
  }
  previews.disabled = !rules.stream;
  const transparent = [...$("background").options].find((option) => option.value === "transparent");
  transparent.disabled = !rules.transparent;
  if (!rules.transparent && $("background").value === "transparent") $("background").value = "auto";
  $("prompt").maxLength = rules.max_prompt_chars;
  $("steps").max = rules.max_inference_steps;
  $("guidance").placeholder = `${rules.guidance_scale} (model default)`;
  updateStepsHint();

  const notes = [];
  if (rules.model !== rules.id) notes.push(`Served by ${rules.model}.`);
  if (rules.max_n === 1) notes.push("One image per request.");
  if (!rules.stream) notes.push(`No previews: ${rules.id} cannot stream.`);
  if (rules.default_response_format === "url") notes.push("Answers with image URLs.");
  $("model-note").textContent = notes.join(" ");
}

function updateStepsHint() {
  const rules = currentRules();
  const steps = rules && rules.steps[$("quality").value];
  $("steps").placeholder = steps ? `${steps} (from quality)` : "from quality";
}

// The request fields, as the official clients send them: OpenAI's first, in the reference's
// order, then pixelsmith's extensions, only when set.
function requestFields() {
  const rules = currentRules() || {};
  const fields = {
    prompt: $("prompt").value,
    model: $("model").value,
    n: Number($("n").value || 1),
    quality: $("quality").value,
    size: $("size").value.trim() || rules.default_size || "auto",
    output_format: $("output-format").value,
    background: $("background").value,
  };
  const partials = Number($("partial-images").value);
  if (rules.stream && partials > 0) {
    fields.stream = true;
    fields.partial_images = partials;
  }
  if ($("seed").value !== "") fields.seed = Number($("seed").value);
  if ($("steps").value !== "") fields.num_inference_steps = Number($("steps").value);
  if ($("guidance").value !== "") fields.guidance_scale = Number($("guidance").value);
  if ($("negative-prompt").value.trim()) fields.negative_prompt = $("negative-prompt").value.trim();
  return fields;
}

const EXTENSIONS = ["seed", "num_inference_steps", "guidance_scale", "negative_prompt"];

// --- Results: one card per image, a preview replaced by the next and then by the image -------

function dataUrl(b64, format) {
  const type = format === "svg" ? "svg+xml" : format;
  return `data:image/${type};base64,${b64}`;
}

function extension(format) {
  return format === "jpeg" ? "jpg" : format;
}

function createCards(count) {
  const cards = [];
  for (let index = 0; index < count; index++) {
    const card = document.createElement("figure");
    card.className = "result pending";
    card.dataset.index = index;
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    placeholder.textContent = "waiting…";
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `Image ${index + 1}`;
    caption.append(label);
    card.append(placeholder, caption);
    cards.push(card);
  }
  $("results").replaceChildren(...cards);
  return cards;
}

// The card's picture: a button that opens it at full size once it is the final image.
function setCardImage(card, src, alt) {
  let img = card.querySelector("img");
  if (!img) {
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.disabled = true; // previews are not worth opening
    img = document.createElement("img");
    open.append(img);
    card.querySelector(".placeholder").replaceWith(open);
    open.addEventListener("click", () => openViewer(img.src, card.dataset.title, open));
  }
  img.src = src;
  img.alt = alt;
  return img;
}

function scrollToResults() {
  if (!narrowScreen.matches) return;
  const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  $("results").scrollIntoView({ block: "start", behavior: reduce ? "auto" : "smooth" });
}

function usageText(usage, images) {
  if (!usage) return "";
  const what = images > 1 ? `for all ${images} images` : "";
  const { total_tokens: total, input_tokens: input, output_tokens: output } = usage;
  const counts = `${total} tokens (${input} in, ${output} out)`;
  return `${counts} ${what}`.trim();
}

// A run's cards, and how it reports into them.
class Run {
  constructor(fields) {
    this.fields = fields;
    this.cards = createCards(fields.n);
    this.partialCounts = []; // per partial_image_index: how many images sent that preview
    this.done = 0;
    this.scrolled = false;
  }

  arrived() {
    if (!this.scrolled) scrollToResults();
    this.scrolled = true;
  }

  // Previews come image by image for each preview step ("0, 0, 1, 1" for n=2): the count of
  // events with this partial_image_index tells which image it belongs to. pixelsmith adds the
  // denoising step each preview shows (`step` of `num_inference_steps`); without them (another
  // server), the preview's number, "of up to" since a model with few steps sends fewer.
  preview(event) {
    const step = event.partial_image_index;
    const image = this.partialCounts[step] || 0;
    this.partialCounts[step] = image + 1;
    const card = this.cards[image];
    if (!card || !card.classList.contains("pending")) return;
    const what = event.step
      ? `step ${event.step} of ${event.num_inference_steps}`
      : `preview ${step + 1} of up to ${this.fields.partial_images}`;
    setCardImage(card, dataUrl(event.b64_json, event.output_format), `image ${image + 1}, ${what}`);
    card.querySelector(".label").textContent = `Image ${image + 1} · ${what}`;
    card.dataset.previews = step + 1; // how many it has shown, for tests and styles
    setStatus(`Image ${image + 1} of ${this.cards.length}: ${what}…`);
    this.arrived();
  }

  // One final image: b64_json or url, with what the server says about it.
  result(item, meta) {
    const index = this.done++;
    const card = this.cards[index];
    if (!card) return;
    const src = item.url || dataUrl(item.b64_json, meta.output_format);
    const seed = item.seed === undefined ? "" : `, seed ${item.seed}`;
    const title = `Image ${index + 1}: ${meta.size}${seed}`;
    card.dataset.title = title;
    const img = setCardImage(card, src, `image ${index + 1}: ${this.fields.prompt}`);
    img.closest("button").disabled = false;
    img.closest("button").setAttribute("aria-label", `Open image ${index + 1} at full size`);
    card.classList.replace("pending", "done");
    if (item.seed !== undefined) card.dataset.seed = item.seed;
    card.dataset.size = meta.size;

    const caption = card.querySelector("figcaption");
    caption.querySelector(".label").textContent = `Image ${index + 1}`;
    const facts = document.createElement("span");
    facts.className = "facts";
    const parts = [
      meta.size,
      item.seed === undefined ? null : `seed ${item.seed}`,
      usageText(meta.usage, meta.images),
    ];
    facts.append(
      ...parts
        .filter(Boolean)
        .map((text) => Object.assign(document.createElement("span"), { textContent: text })),
    );
    caption.append(facts);
    if (item.revised_prompt) {
      const revised = document.createElement("span");
      revised.className = "revised";
      revised.textContent = `Revised prompt: ${item.revised_prompt}`;
      caption.append(revised);
    }
    const name = `pixelsmith-${item.seed ?? index}.${extension(meta.output_format)}`;
    const actions = document.createElement("span");
    actions.className = "actions-row";
    const download = document.createElement("a");
    download.href = src;
    download.download = name;
    download.textContent = "Download";
    const editThis = document.createElement("button");
    editThis.type = "button";
    editThis.className = "edit-this";
    editThis.textContent = "Edit this image";
    editThis.addEventListener("click", () => editResult(src, name, meta.output_format));
    actions.append(download, editThis);
    caption.append(actions);
    addToHistory({ src, title, prompt: this.fields.prompt });
    this.arrived();
  }

  // Cards that never got their image: the run failed or was cancelled.
  finish(why) {
    for (const card of this.cards) {
      if (!card.classList.contains("pending")) continue;
      card.classList.replace("pending", "unfinished");
      card.querySelector(".label").textContent += ` · ${why}`;
      const placeholder = card.querySelector(".placeholder");
      if (placeholder) placeholder.textContent = why;
    }
  }
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

async function send(url, init, run) {
  const started = performance.now();
  const response = await fetch(url, init);
  if (!response.ok) {
    run.finish("not made");
    showError(await response.json().catch(() => ({})), response.status);
    return;
  }
  const type = response.headers.get("content-type") || "";
  let failed = false;
  if (type.startsWith("text/event-stream")) {
    await readEvents(response, (event) => {
      const type = String(event.type || "");
      if (event.error) {
        failed = true;
        showError(event);
      } else if (type.endsWith(".partial_image")) {
        run.preview(event);
      } else if (type.endsWith(".completed")) {
        run.result(event, { ...event, images: 1 });
      }
    });
  } else {
    const body = await response.json();
    const meta = { ...body, images: body.data.length };
    for (const item of body.data) run.result(item, meta);
  }
  run.finish(failed ? "not made" : "not sent");
  const count = run.done;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (count) setStatus(`${count} image${count > 1 ? "s" : ""} in ${seconds} s`);
  else if (!failed) setStatus("The answer had no image.");
}

async function submit(event) {
  event.preventDefault();
  clearError();
  const fields = requestFields();
  const editing = mode() === "edit";
  if (editing && !edit.file) {
    showError({ error: { message: "Choose an image to edit first.", param: "image" } });
    return;
  }
  const run = new Run(fields);
  state.controller = new AbortController();
  const { signal } = state.controller;
  // The focused Generate button is disabled while the run goes on, which would drop the focus
  // to <body>: it goes to Cancel, the one thing to do meanwhile.
  const submitHadFocus = document.activeElement === $("submit");
  $("submit").disabled = true;
  $("cancel").disabled = false;
  if (submitHadFocus) $("cancel").focus();
  setStatus("Working…");
  try {
    if (!editing) {
      recordRequest({ mode: "generate", fields });
      await send(
        "v1/images/generations",
        {
          method: "POST",
          headers: { "Content-Type": "application/json", ...authHeaders() },
          body: JSON.stringify(fields),
          signal,
        },
        run,
      );
    } else {
      const form = new FormData();
      form.append("image", edit.file, edit.file.name);
      const mask = maskIsPainted()
        ? await new Promise((resolve) => edit.mask.toBlob(resolve, "image/png"))
        : null;
      if (mask) form.append("mask", mask, "mask.png");
      for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
      recordRequest({ mode: "edit", fields, imageName: edit.file.name, mask });
      await send(
        "v1/images/edits",
        { method: "POST", headers: authHeaders(), body: form, signal },
        run,
      );
    }
  } catch (error) {
    if (error.name === "AbortError") {
      run.finish("cancelled");
      // Closing the connection is the cancel: the server stops the run after its current step.
      setStatus("Cancelled.");
    } else {
      run.finish("not made");
      showError({ error: { message: `Could not reach the server: ${error.message}` } });
    }
  } finally {
    const cancelHadFocus = document.activeElement === $("cancel");
    state.controller = null;
    $("submit").disabled = false;
    $("cancel").disabled = true;
    if (cancelHadFocus) $("submit").focus(); // a disabled button would drop the focus to <body>
  }
}

function cancel() {
  state.controller?.abort();
}

// --- The request as code: the official clients, with the key from the environment -----------

function recordRequest(request) {
  state.lastRequest = { ...request, baseUrl: new URL("v1", document.baseURI).href };
  if (edit.maskUrl) URL.revokeObjectURL(edit.maskUrl);
  edit.maskUrl = request.mask ? URL.createObjectURL(request.mask) : null;
  $("code-panel").hidden = false;
  renderCode();
}

// JSON's string syntax is also Python's and JavaScript's.
const literal = JSON.stringify;

function pythonValue(value) {
  if (value === true) return "True";
  if (value === false) return "False";
  return literal(value);
}

function splitFields(fields) {
  const openai = Object.entries(fields).filter(([name]) => !EXTENSIONS.includes(name));
  const extensions = Object.entries(fields).filter(([name]) => EXTENSIONS.includes(name));
  return { openai, extensions };
}

function pythonCode({ mode, fields, baseUrl, imageName, mask }) {
  const { openai, extensions } = splitFields(fields);
  const prefix = mode === "edit" ? "image_edit" : "image_generation";
  const args = [];
  if (mode === "edit") {
    args.push(`    image=open(${literal(imageName)}, "rb"),`);
    if (mask) args.push('    mask=open("mask.png", "rb"),');
  }
  for (const [name, value] of openai) args.push(`    ${name}=${pythonValue(value)},`);
  if (extensions.length) {
    const extra = extensions
      .map(([name, value]) => `${literal(name)}: ${pythonValue(value)}`)
      .join(", ");
    args.push(
      `    # pixelsmith's extensions, which the client sends as they are`,
      `    extra_body={${extra}},`,
    );
  }
  const format = extension(fields.output_format);
  const answer = fields.stream ? "stream" : "result";
  const method = mode === "edit" ? "edit" : "generate";
  const lines = [
    "import base64",
    "import os",
    "",
    "from openai import OpenAI",
    "",
    "client = OpenAI(",
    `    base_url=${literal(baseUrl)},`,
    '    api_key=os.environ["OPENAI_API_KEY"],',
    ")",
    "",
    `${answer} = client.images.${method}(`,
    ...args,
    ")",
  ];
  if (fields.stream) {
    lines.push(
      "index = 0",
      "for event in stream:",
      `    # ${prefix}.partial_image events are the previews`,
      `    if event.type == "${prefix}.completed":`,
      `        with open(f"image-{index}.${format}", "wb") as file:`,
      "            file.write(base64.b64decode(event.b64_json))",
      "        index += 1",
    );
  } else if ((rulesFor(fields.model) || {}).default_response_format === "url") {
    lines.push(
      "for image in result.data:",
      "    print(image.url)  # a signed link, valid for an hour by default",
    );
  } else {
    lines.push(
      "for index, image in enumerate(result.data):",
      `    with open(f"image-{index}.${format}", "wb") as file:`,
      "        file.write(base64.b64decode(image.b64_json))",
    );
  }
  return lines.join("\n");
}

function javascriptCode({ mode, fields, baseUrl, imageName, mask }) {
  const { openai, extensions } = splitFields(fields);
  const prefix = mode === "edit" ? "image_edit" : "image_generation";
  const args = [];
  if (mode === "edit") {
    args.push(`  image: fs.createReadStream(${literal(imageName)}),`);
    if (mask) args.push('  mask: fs.createReadStream("mask.png"),');
  }
  for (const [name, value] of openai) args.push(`  ${name}: ${literal(value)},`);
  if (extensions.length) {
    // In TypeScript these need a cast: they are not in the client's types.
    args.push("  // pixelsmith's extensions: the client sends the body as it is");
    for (const [name, value] of extensions) args.push(`  ${name}: ${literal(value)},`);
  }
  const format = extension(fields.output_format);
  const answer = fields.stream ? "stream" : "result";
  const method = mode === "edit" ? "edit" : "generate";
  const lines = [
    'import fs from "node:fs";',
    'import OpenAI from "openai";',
    "",
    "const client = new OpenAI({",
    `  baseURL: ${literal(baseUrl)},`,
    "  apiKey: process.env.OPENAI_API_KEY,",
    "});",
    "",
    `const ${answer} = await client.images.${method}({`,
    ...args,
    "});",
  ];
  if (fields.stream) {
    lines.push(
      "let index = 0;",
      "for await (const event of stream) {",
      `  if (event.type === "${prefix}.completed") {`,
      `    const file = \`image-\${index++}.${format}\`;`,
      '    fs.writeFileSync(file, Buffer.from(event.b64_json, "base64"));',
      "  }",
      "}",
    );
  } else if ((rulesFor(fields.model) || {}).default_response_format === "url") {
    lines.push("for (const image of result.data) console.log(image.url);");
  } else {
    lines.push(
      "for (const [index, image] of result.data.entries()) {",
      `  fs.writeFileSync(\`image-\${index}.${format}\`, Buffer.from(image.b64_json, "base64"));`,
      "}",
    );
  }
  return lines.join("\n");
}

function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

function curlCode({ mode, fields, baseUrl, imageName, mask }) {
  const lines = [
    `curl ${shellQuote(`${baseUrl}/images/${mode === "edit" ? "edits" : "generations"}`)}`,
  ];
  if (fields.stream) lines.push("  --no-buffer"); // print each event as it arrives
  lines.push('  -H "Authorization: Bearer $OPENAI_API_KEY"');
  if (mode === "edit") {
    lines.push(`  -F ${shellQuote(`image=@${imageName}`)}`);
    if (mask) lines.push("  -F mask=@mask.png");
    // --form-string: a value starting with @ or < is text, not a file to read.
    for (const [name, value] of Object.entries(fields))
      lines.push(`  --form-string ${shellQuote(`${name}=${value}`)}`);
  } else {
    lines.push(
      '  -H "Content-Type: application/json"',
      `  -d ${shellQuote(JSON.stringify(fields))}`,
    );
  }
  return lines.join(" \\\n");
}

const CODE_WRITERS = { python: pythonCode, curl: curlCode, javascript: javascriptCode };

function renderCode() {
  if (!state.lastRequest) return;
  $("code").textContent = CODE_WRITERS[state.language](state.lastRequest);
  $("code").dataset.language = state.language;
  const files = $("code-files");
  files.replaceChildren();
  if (state.lastRequest.mode === "edit") {
    files.append(`It reads the image from ${state.lastRequest.imageName}`);
    if (edit.maskUrl) {
      const link = Object.assign(document.createElement("a"), {
        href: edit.maskUrl,
        download: "mask.png",
        textContent: "mask.png",
      });
      files.append(" and the painted mask from ", link);
    }
    files.append(".");
  }
}

async function copyCode(language) {
  state.language = language;
  renderCode();
  const names = { python: "Python", curl: "curl", javascript: "JavaScript" };
  try {
    await navigator.clipboard.writeText($("code").textContent);
    $("copy-status").textContent = `Copied as ${names[language]}.`;
  } catch {
    // No clipboard (permission refused, or not a secure context): select it for Ctrl+C.
    window.getSelection().selectAllChildren($("code"));
    $("code").focus();
    $("copy-status").textContent = `Shown as ${names[language]}: press Ctrl+C to copy it.`;
  }
}

// --- This tab's history, and the full-size viewer -----------------------------------------------

function loadHistory() {
  try {
    state.history = JSON.parse(tabStore.getItem(HISTORY_STORAGE) || "[]");
  } catch {
    state.history = [];
  }
  renderHistory();
}

function addToHistory(entry) {
  state.history.unshift(entry);
  state.history.length = Math.min(state.history.length, HISTORY_LIMIT);
  // Large images can pass sessionStorage's few megabytes: then the oldest are kept only in
  // memory, until the tab is reloaded.
  for (let kept = state.history.length; kept > 0; kept--) {
    try {
      tabStore.setItem(HISTORY_STORAGE, JSON.stringify(state.history.slice(0, kept)));
      break;
    } catch {
      if (kept === 1) tabStore.removeItem(HISTORY_STORAGE);
    }
  }
  renderHistory();
}

function renderHistory() {
  $("history-panel").hidden = state.history.length === 0;
  $("history").replaceChildren(
    ...state.history.map((entry) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-label", `Open ${entry.title} (${entry.prompt})`);
      const img = Object.assign(document.createElement("img"), { src: entry.src, alt: "" });
      button.append(img);
      button.addEventListener("click", () =>
        openViewer(entry.src, `${entry.title}: ${entry.prompt}`, button),
      );
      item.append(button);
      return item;
    }),
  );
}

function openViewer(src, title, opener) {
  $("viewer-image").src = src;
  $("viewer-image").alt = title;
  $("viewer-title").textContent = `${title} (full size)`;
  $("viewer").returnFocusTo = opener;
  $("viewer").showModal(); // focus moves into the dialog; Escape closes it
}

// --- Edit mode: the image, and a mask painted with a brush ---------------------------------

async function editResult(src, name, format) {
  // A data: URL is decoded here rather than fetched: the page's CSP allows fetches to this
  // server only. A URL answer is this server's, so it can be fetched.
  let blob;
  if (src.startsWith("data:")) {
    const bytes = Uint8Array.from(atob(src.split(",", 2)[1]), (char) => char.charCodeAt(0));
    blob = new Blob([bytes], { type: `image/${format}` });
  } else {
    blob = await (await fetch(src)).blob();
  }
  const file = new File([blob], name, { type: blob.type });
  // The file input shows the image's name, as if it had been chosen there.
  const transfer = new DataTransfer();
  transfer.items.add(file);
  $("image-file").files = transfer.files;
  document.querySelector("input[name=mode][value=edit]").checked = true;
  showMode();
  if (await loadEditImage(file)) {
    $("edit-panel").scrollIntoView({ block: "start" });
    $("edit-canvas").focus();
    setStatus(`${name} is the image to edit: paint the area to change, then Edit.`);
  }
}

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
  if (edit.showCursor) {
    // The keyboard brush: a ring of the brush's size, dark and light to show on any image.
    const toCanvas = canvas.width / edit.mask.width;
    const radius = (brushWidth() / 2) * toCanvas;
    const [x, y] = [edit.cursor.x * toCanvas, edit.cursor.y * toCanvas];
    for (const [color, width] of [
      ["#000", 3],
      [edit.eraser ? "#7cf" : "#fff", 1.5],
    ]) {
      context.beginPath();
      context.arc(x, y, Math.max(radius, 2), 0, 2 * Math.PI);
      context.strokeStyle = color;
      context.lineWidth = width;
      context.stroke();
    }
  }
}

function resetMask() {
  const context = edit.mask.getContext("2d");
  context.globalCompositeOperation = "source-over";
  context.fillStyle = "#000";
  context.fillRect(0, 0, edit.mask.width, edit.mask.height);
  drawEditCanvas();
}

// Whether any pixel is marked for repainting: without one no mask is sent, and the whole image
// is redrawn. (Strokes that were all erased or undone leave none.)
function maskIsPainted() {
  if (!edit.mask) return false;
  const { data } = edit.mask.getContext("2d").getImageData(0, 0, edit.mask.width, edit.mask.height);
  for (let i = 3; i < data.length; i += 4) if (data[i] === 0) return true;
  return false;
}

async function loadEditImage(file) {
  const image = new Image();
  const url = URL.createObjectURL(file);
  image.src = url;
  try {
    await image.decode();
  } catch {
    showError({
      error: { message: `${file.name} is not an image this browser can open.`, param: "image" },
    });
    return false;
  } finally {
    URL.revokeObjectURL(url); // decoded: the pixels stay with the element
  }
  edit.file = file;
  edit.image = image;
  edit.mask = document.createElement("canvas");
  edit.mask.width = image.naturalWidth;
  edit.mask.height = image.naturalHeight;
  edit.undo = [];
  edit.cursor = { x: image.naturalWidth / 2, y: image.naturalHeight / 2 };
  $("undo-mask").disabled = true;
  // The drawing buffer at most 512 px on its longer side; CSS may shrink it further.
  const scale = Math.min(1, 512 / Math.max(image.naturalWidth, image.naturalHeight));
  const canvas = $("edit-canvas");
  canvas.width = Math.round(image.naturalWidth * scale);
  canvas.height = Math.round(image.naturalHeight * scale);
  canvas.setAttribute(
    "aria-label",
    `Mask over ${file.name}, ${image.naturalWidth}x${image.naturalHeight}`,
  );
  resetMask();
  return true;
}

// Screen pixels per image pixel: the layout may scale the canvas.
function screenScale() {
  return $("edit-canvas").getBoundingClientRect().width / edit.mask.width;
}

// The brush's diameter in image pixels (the slider sets it on screen).
function brushWidth() {
  return Number($("brush-size").value) / screenScale();
}

// Before each stroke: what undo goes back to.
function beginStroke() {
  edit.undo.push(edit.mask.getContext("2d").getImageData(0, 0, edit.mask.width, edit.mask.height));
  if (edit.undo.length > 30) edit.undo.shift();
  $("undo-mask").disabled = false;
}

// A stroke from `from` to `to`, in image pixels: it marks them for repainting (transparent), or
// with the eraser keeps them again (opaque).
function strokeMask(from, to) {
  const context = edit.mask.getContext("2d");
  context.globalCompositeOperation = edit.eraser ? "source-over" : "destination-out";
  context.strokeStyle = "#000";
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = brushWidth();
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(to.x, to.y);
  context.stroke();
  drawEditCanvas();
}

function undoMask() {
  const snapshot = edit.undo.pop();
  if (!snapshot) return;
  edit.mask.getContext("2d").putImageData(snapshot, 0, 0);
  $("undo-mask").disabled = edit.undo.length === 0;
  drawEditCanvas();
  announceMask("Undone.");
}

function setEraser(on) {
  edit.eraser = on;
  $("eraser").setAttribute("aria-pressed", String(on));
  if (edit.mask) drawEditCanvas();
  announceMask(on ? "Eraser: strokes keep the image." : "Brush: strokes mark the area to repaint.");
}

function announceMask(text) {
  $("mask-status").textContent = text;
}

function pointerPoint(event) {
  const rect = $("edit-canvas").getBoundingClientRect();
  const scale = screenScale();
  return { x: (event.clientX - rect.left) / scale, y: (event.clientY - rect.top) / scale };
}

function setUpBrush() {
  const canvas = $("edit-canvas");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (!edit.mask) return;
    canvas.setPointerCapture(event.pointerId);
    edit.showCursor = false;
    beginStroke();
    last = pointerPoint(event);
    strokeMask(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = pointerPoint(event);
    strokeMask(last, point);
    last = point;
  });
  const stop = () => {
    last = null;
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  canvas.addEventListener("keydown", brushKey);
  canvas.addEventListener("blur", () => {
    edit.showCursor = false;
    if (edit.mask) drawEditCanvas();
  });
}

// The keyboard brush: arrows move it (Shift+arrows faster), Space or Enter paints there.
function brushKey(event) {
  if (!edit.mask) return;
  const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  const key = event.key;
  if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
    undoMask();
  } else if (event.ctrlKey || event.metaKey || event.altKey) {
    return; // the browser's own shortcuts
  } else if (moves[key]) {
    // In screen pixels, like the brush: 8 a press, 32 with Shift.
    const step = (event.shiftKey ? 32 : 8) / screenScale();
    const [dx, dy] = moves[key];
    edit.cursor = {
      x: Math.min(edit.mask.width, Math.max(0, edit.cursor.x + dx * step)),
      y: Math.min(edit.mask.height, Math.max(0, edit.cursor.y + dy * step)),
    };
    announceMask(`Brush at ${Math.round(edit.cursor.x)}, ${Math.round(edit.cursor.y)}.`);
  } else if (key === " " || key === "Enter") {
    beginStroke();
    strokeMask(edit.cursor, edit.cursor);
    const what = edit.eraser ? "Erased" : "Painted";
    announceMask(`${what} at ${Math.round(edit.cursor.x)}, ${Math.round(edit.cursor.y)}.`);
  } else if (key === "e" || key === "E") {
    setEraser(!edit.eraser);
  } else if (key === "u" || key === "U") {
    undoMask();
  } else if (key === "[" || key === "]") {
    const slider = $("brush-size");
    slider.value = Number(slider.value) + (key === "]" ? 4 : -4);
    announceMask(`Brush size ${slider.value}.`);
  } else {
    return; // Tab and the rest keep their usual meaning
  }
  event.preventDefault(); // no page scroll on arrows and Space, no form submit on Enter
  edit.showCursor = true;
  drawEditCanvas();
}

function showMode() {
  const editing = mode() === "edit";
  $("edit-panel").hidden = !editing;
  $("submit").textContent = editing ? "Edit" : "Generate";
}

function setUp() {
  $("api-key").value = tabStore.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    tabStore.setItem(KEY_STORAGE, $("api-key").value.trim());
  });
  // Each field's own description, restored when an error no longer describes it.
  for (const field of Object.values(PARAM_FIELDS).map($)) {
    field.dataset.describedby = field.getAttribute("aria-describedby") || "";
    // Fixing the field clears its mark; the error's text stays until the next request.
    const clear = () => {
      field.removeAttribute("aria-invalid");
      restoreDescription(field);
    };
    field.addEventListener("input", clear);
    field.addEventListener("change", clear);
  }
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", showMode);
  }
  $("model").addEventListener("change", applyModelRules);
  $("quality").addEventListener("change", updateStepsHint);
  $("image-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) loadEditImage(file);
  });
  $("clear-mask").addEventListener("click", () => {
    if (!edit.mask) return;
    beginStroke(); // clearing can be undone too
    resetMask();
    announceMask("Mask cleared.");
  });
  $("eraser").addEventListener("click", () => setEraser(!edit.eraser));
  $("undo-mask").addEventListener("click", undoMask);
  setUpBrush();
  $("request-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyCode(button.dataset.language));
  }
  $("clear-history").addEventListener("click", () => {
    state.history = [];
    tabStore.removeItem(HISTORY_STORAGE);
    renderHistory();
  });
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("viewer").addEventListener("close", () => $("viewer").returnFocusTo?.focus());
  loadHistory();
  return loadModels();
}

setUp().then(() => {
  document.body.dataset.ready = "true";
});
