// tests/serve/openai.mjs URL MODEL: the official openai npm client, unchanged but for baseURL,
// against knob serve: models.list, a chat completion plain and streamed (with logprobs), a legacy
// completion, and an error surfacing as the client's own APIError with status 400.
// The npm folder comes from $NPM_MODULES (tests/cli/test_serve_node.sh sets it).
import path from "node:path";
import { pathToFileURL } from "node:url";

const [url, model] = process.argv.slice(2);
const { default: OpenAI } = await import(pathToFileURL(path.join(process.env.NPM_MODULES, "openai/index.mjs")).href);
const client = new OpenAI({ baseURL: url + "/v1", apiKey: "k", timeout: 20000, maxRetries: 0 });
const check = (cond, what) => { if (!cond) throw new Error(what); };

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, "models.list: " + JSON.stringify(models.data));

const messages = [{ role: "system", content: "be nice." }, { role: "user", content: "hello there" }];
const plain = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
const text = plain.choices[0].message.content;
check(plain.object === "chat.completion" && typeof text === "string", "chat: " + JSON.stringify(plain));
check(["stop", "length"].includes(plain.choices[0].finish_reason), "finish_reason " + plain.choices[0].finish_reason);
check(plain.usage.prompt_tokens === 45 && plain.usage.completion_tokens > 0, "usage " + JSON.stringify(plain.usage));

// streamed, greedy: the deltas joined are the plain reply
const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true,
                                                      logprobs: true, top_logprobs: 3 });
let joined = "", chunks = 0, tokens = 0, finish = null;
for await (const chunk of stream) {
  chunks++;
  const c = chunk.choices[0];
  joined += c.delta.content || "";
  if (c.logprobs && c.logprobs.content) {
    for (const t of c.logprobs.content) { tokens++; check(t.top_logprobs.length === 3, "top_logprobs"); }
  }
  if (c.finish_reason) finish = c.finish_reason;
}
check(joined === text, `streamed ${JSON.stringify(joined)} != plain ${JSON.stringify(text)}`);
check(chunks >= 2 && finish && tokens > 0, `stream: ${chunks} chunks, ${tokens} tokens, finish ${finish}`);

const comp = await client.completions.create({ model, prompt: "User: hello", max_tokens: 8, temperature: 0 });
check(comp.object === "text_completion" && comp.choices[0].text.length > 0, "completion: " + JSON.stringify(comp));

let status = 0;
try {
  await client.chat.completions.create({ model, messages, max_tokens: -1 });
} catch (e) {
  status = e.status;
  check(e instanceof OpenAI.APIError && /max_tokens/.test(e.message), "error: " + e.message);
}
check(status === 400, "max_tokens -1: status " + status);
console.log(`openai client: ok (${chunks} chunks, reply ${JSON.stringify(text)})`);
