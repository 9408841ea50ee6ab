// The Vercel AI SDK (ai 7) against Darkroom, with only baseURL changed: `@ai-sdk/openai` and
// `@ai-sdk/openai-compatible`, each generating and editing. Both require data[].b64_json in every reply, and
// neither sends response_format on edits (openai-compatible sends none at all).
import { generateImage } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { readFileSync } from "node:fs";

const baseURL = `${process.env.DARKROOM_URL}/v1`;
const apiKey = process.env.DARKROOM_API_KEY;
const reference = readFileSync(process.env.IMAGE_A);
const providers = {
  openai: createOpenAI({ baseURL, apiKey }).image("gpt-image-1"),
  "openai-compatible": createOpenAICompatible({ name: "darkroom", baseURL, apiKey }).imageModel("flux-schnell"),
};
const out = {};
for (const [name, model] of Object.entries(providers)) {
  const generated = await generateImage({ model, prompt: "a lighthouse at dusk", size: "256x256", maxRetries: 0 });
  const edited = await generateImage({ model, prompt: { text: "make it blue", images: [reference] },
                                       size: "256x256", maxRetries: 0,
                                       providerOptions: { darkroom: { seed: 7 } } });
  out[name] = { generate: { bytes: generated.image.uint8Array.length, mediaType: generated.image.mediaType },
                edit: { bytes: edited.image.uint8Array.length, mediaType: edited.image.mediaType } };
}
console.log(JSON.stringify(out));
