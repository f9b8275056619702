// bench/serve_client.mjs URL CLIENTS MAX_TOKENS PROMPT: CLIENTS streamed greedy completions at
// once against knob serve; prints each one's time to first token (the first text chunk, not the
// headers) and decode tokens/s (first chunk to last), and the total tokens/s of all of them.
const [url, nc, nt, prompt] = [process.argv[2], +process.argv[3], +process.argv[4], process.argv[5]];
async function one(i) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: prompt + (nc > 1 ? " " + i : ""), max_tokens: nt, temperature: 0, stream: true }) });
  const rd = r.body.getReader(), dec = new TextDecoder();
  let buf = "", first = 0, last = 0, tokens = 0;
  for (;;) {
    const { value, done } = await rd.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, at); buf = buf.slice(at + 2);
      if (!ev.startsWith("data: {")) continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices[0] && j.choices[0].text) { tokens++; last = performance.now(); if (!first) first = last; }
    }
  }
  return { ttft: (first - t0) / 1000, decode: tokens > 1 ? (tokens - 1) / ((last - first) / 1000) : 0, tokens, end: performance.now() };
}
const t0 = performance.now();
const rs = await Promise.all([...Array(nc).keys()].map(one));
const wall = (Math.max(...rs.map((r) => r.end)) - t0) / 1000, total = rs.reduce((s, r) => s + r.tokens, 0);
for (const r of rs) console.log(`  first token ${r.ttft.toFixed(3)} s, decode ${r.decode.toFixed(2)} tokens/s, ${r.tokens} chunks`);
console.log(`${nc} client(s): ${total} tokens in ${wall.toFixed(2)} s = ${(total / wall).toFixed(2)} tokens/s in total`);
