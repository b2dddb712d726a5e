// The official npm `openai` client runs one batch of image generations against a pixelsmith
// server: upload the JSONL, create the batch, poll to the end, read the output file.
// Prints one JSON summary for the Python test.
//   node tests/node/batch.mjs http://127.0.0.1:PORT/v1
import OpenAI, { toFile } from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });

const lines = ["a", "b"].map((id) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/images/generations",
    body: { model: "gpt-image-1", prompt: `a lighthouse ${id}`, size: "64x64" },
  }),
);
const file = await client.files.create({
  file: await toFile(Buffer.from(lines.join("\n") + "\n"), "requests.jsonl"),
  purpose: "batch",
});
let batch = await client.batches.create({
  input_file_id: file.id,
  endpoint: "/v1/images/generations",
  completion_window: "24h",
  metadata: null,
});
const deadline = Date.now() + 120_000;
while (!["completed", "failed", "cancelled", "expired"].includes(batch.status)) {
  if (Date.now() > deadline) throw new Error(`batch still ${batch.status}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  batch = await client.batches.retrieve(batch.id);
}
const content = await client.files.content(batch.output_file_id);
const outputs = (await content.text()).trim().split("\n").map((line) => JSON.parse(line));
const listed = [];
for await (const listedBatch of client.batches.list({ limit: 1 })) listed.push(listedBatch.id);
console.log(
  JSON.stringify({
    status: batch.status,
    counts: batch.request_counts,
    outputs: outputs.map((entry) => ({
      custom_id: entry.custom_id,
      status_code: entry.response.status_code,
      images: entry.response.body.data.length,
    })),
    listed_first: listed[0] === batch.id,
  }),
);
