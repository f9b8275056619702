// tests/serve/page.mjs URL SCREENSHOT: the chat page in headless Chromium (Debian's, through
// npm puppeteer-core; never a downloaded browser): opens /, types a message, presses Enter, waits
// for the streamed reply to finish and for one bar chart of top-5 candidates per token, checks
// Shift+Enter makes a newline instead of sending, and saves a screenshot.
import path from "node:path";
import { pathToFileURL } from "node:url";

const [url, shot] = process.argv.slice(2);
const { default: puppeteer } = await import(pathToFileURL(path.join(process.env.NPM_MODULES, "puppeteer-core/lib/esm/puppeteer/puppeteer-core.js")).href);
const check = (cond, what) => { if (!cond) throw new Error(what); };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 760 });
  const outside = [];
  page.on("request", (r) => { if (!r.url().startsWith(url)) outside.push(r.url()); });
  await page.goto(url + "/", { waitUntil: "load", timeout: 20000 });
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("model:"), { timeout: 10000 });
  await page.evaluate(() => { document.getElementById("maxt").value = "12"; document.getElementById("temp").value = "0"; });
  await page.focus("#in");
  await page.keyboard.type("what is a");
  await page.keyboard.down("Shift"); await page.keyboard.press("Enter"); await page.keyboard.up("Shift");
  check((await page.$eval("#in", (e) => e.value)) === "what is a\n", "Shift+Enter did not make a newline");
  await page.keyboard.type("cat?");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".msg.assistant[data-done]", { timeout: 20000 });
  const r = await page.evaluate(() => {
    const m = document.querySelector(".msg.assistant");
    return { done: m.dataset.done, finish: m.dataset.finish, toks: m.querySelectorAll(".tok").length,
             cards: m.querySelectorAll(".cand").length, rows: m.querySelectorAll(".cand .row").length,
             chosen: m.querySelectorAll(".cand .row.chosen").length, user: document.querySelector(".msg.user .text").textContent,
             text: m.querySelector(".text").textContent };
  });
  check(r.done === "1", "reply failed: " + r.text);
  check(r.user === "what is a\ncat?", "user message: " + JSON.stringify(r.user));
  check(r.toks === 12 && r.cards === 12 && r.rows === 60, `tokens ${r.toks}, charts ${r.cards}, bars ${r.rows}`);
  check(r.chosen === 12, `greedy: the chosen token is the top candidate of each chart (${r.chosen} of 12)`);
  check(outside.length === 0, "the page asked for " + outside.join(", "));
  await page.screenshot({ path: shot });
  console.log(`page: ok (${r.toks} tokens, ${r.rows} bars, finish ${r.finish}; screenshot ${shot})`);
} finally {
  await browser.close();
}
