// The official npm `openai` client against a pixelsmith server: streamed generation and a
// streamed edit, as a Node app would call them. Prints one JSON summary for the Python test.
//   node tests/node/stream.mjs http://127.0.0.1:PORT/v1 image.png
import { readFileSync } from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, imagePath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });

function summary(event) {
  return {
    type: event.type,
    partial_image_index: event.partial_image_index,
    size: event.size,
    output_format: event.output_format,
    usage: event.usage,
    b64_json: event.b64_json,
  };
}

const generated = [];
const stream = await client.images.generate({
  model: "gpt-image-1",
  prompt: "a lighthouse at dusk",
  size: "128x128",
  quality: "high",
  stream: true,
  partial_images: 2,
});
for await (const event of stream) generated.push(summary(event));

const edited = [];
const editStream = await client.images.edit({
  model: "gpt-image-1",
  image: await toFile(readFileSync(imagePath), "input.png", { type: "image/png" }),
  prompt: "a red roof",
  stream: true,
  partial_images: 1,
  quality: "high",
});
for await (const event of editStream) edited.push(summary(event));

let error = null;
try {
  await client.images.generate({ prompt: "a cat", size: "999x999" });
} catch (caught) {
  error = { status: caught.status, param: caught.param, code: caught.code };
}

console.log(JSON.stringify({ generated, edited, error }));
