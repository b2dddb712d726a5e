// The official npm `openai` client (7.57) against pixelsmith with today's API: the current
// model names, a gpt-image-2 size, the xhigh tier, GIF and SVG output, a two-image edit, a
// markup edit and safety_identifier. Prints one JSON summary for tests/test_node_client.py.
//   node tests/node/today.mjs http://127.0.0.1:PORT/v1 image.png second.png markup.png
import { readFileSync } from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, imagePath, secondPath, markupPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const file = (path, name) => toFile(readFileSync(path), name, { type: "image/png" });

const models = (await client.models.list()).data.map((model) => model.id);

const sized = await client.images.generate({
  model: "gpt-image-2.5-flare",
  prompt: "a lighthouse",
  size: "336x208",
  quality: "xhigh",
  safety_identifier: "user-7",
});

const gif = await client.images.generate({
  model: "gpt-image-2.5-sunburst",
  prompt: "a lighthouse",
  size: "64x64",
  output_format: "gif",
  frame_count: 3,
  frame_duration_ms: 150,
});

const svg = await client.images.generate({
  model: "gpt-image-2.6-flare",
  prompt: "a red apple",
  size: "64x64",
  output_format: "svg",
  svg: { model: "vtracer", reasoning: { effort: "low" } },
});

const twoImages = await client.images.edit({
  model: "gpt-image-2.5-flare",
  image: [await file(imagePath, "a.png"), await file(secondPath, "b.png")],
  prompt: "in the style of the second",
});

const markedUp = await client.images.edit({
  model: "gpt-image-2.5-flare",
  image: await file(imagePath, "a.png"),
  markup: await file(markupPath, "markup.png"),
  prompt: "a red banner",
});

let error = null;
try {
  await client.images.generate({ model: "gpt-image-2", prompt: "a cat", quality: "max" });
} catch (caught) {
  error = { status: caught.status, param: caught.param, code: caught.code };
}

const image = (response) => ({
  b64_json: response.data[0].b64_json,
  size: response.size,
  quality: response.quality,
  output_format: response.output_format,
  safety_identifier: response.safety_identifier,
});

console.log(
  JSON.stringify({
    models,
    sized: image(sized),
    gif: image(gif),
    svg: image(svg),
    twoImages: image(twoImages),
    markedUp: image(markedUp),
    error,
  }),
);
