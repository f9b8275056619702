// tests/tour/page_check.js PAGE SCREENSHOT: opens knob tour's report page in Debian's headless
// Chromium (driven by npm puppeteer-core from data/npm, never a downloaded browser) and checks that
// every <img> and <object> loaded (naturalWidth > 0), that no element reaches past the page's width,
// that the page asks for nothing outside file:// (no network, no outside scripts or fonts), and that
// it holds the 15 chapters and the table of contents. Saves a full-page screenshot (the CI artefact).
// Prints one line per problem and exits 1 on any; "ok ..." and exit 0 otherwise.
'use strict';
const path = require('path');
const repo = path.resolve(__dirname, '..', '..');
const puppeteer = require(path.join(process.env.KNOB_NPM || path.join(repo, 'data', 'npm', 'node_modules'), 'puppeteer-core'));

async function main() {
    const [page_path, shot] = process.argv.slice(2);
    if (!page_path || !shot) {
        console.log('usage: node page_check.js PAGE SCREENSHOT');
        process.exit(2);
    }
    const args = ['--disable-gpu', '--hide-scrollbars'];
    if (process.getuid && process.getuid() === 0)
        args.push('--no-sandbox');
    const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
                                             headless: true, args });
    const problems = [];
    try {
        const page = await browser.newPage();
        await page.setViewport({ width: 1100, height: 900 });
        await page.setRequestInterception(true);
        page.on('request', (req) => {
            const url = req.url();
            if (url.startsWith('file://') || url.startsWith('data:'))
                req.continue();
            else {
                problems.push('request outside the page\'s folder: ' + url);
                req.abort();
            }
        });
        page.on('pageerror', (e) => problems.push('page error: ' + e.message));
        const resp = await page.goto('file://' + path.resolve(page_path), { waitUntil: 'load' });
        if (!resp || !resp.ok())
            problems.push('cannot load ' + page_path);
        const r = await page.evaluate(() => {
            const out = { bad: [], n_img: 0, n_obj: 0, wide: [], sections: 0, toc: 0, scripts: 0 };
            const width = document.documentElement.clientWidth;
            for (const img of document.querySelectorAll('img')) {
                out.n_img++;
                if (!img.complete || img.naturalWidth === 0)
                    out.bad.push(img.getAttribute('src'));
            }
            for (const o of document.querySelectorAll('object')) {
                out.n_obj++;
                const r = o.getBoundingClientRect();
                if (r.width === 0 || r.height === 0)
                    out.bad.push(o.getAttribute('data'));
            }
            for (const el of document.body.querySelectorAll('*')) {
                if (el.closest('pre') && el.tagName !== 'PRE')
                    continue;   // a block of text scrolls inside its own box
                const r = el.getBoundingClientRect();
                if (r.right > width + 1 || r.left < -1)
                    out.wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + Math.round(r.left) +
                                  '..' + Math.round(r.right));
            }
            if (document.documentElement.scrollWidth > width + 1)
                out.wide.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + width);
            out.sections = document.querySelectorAll('section[id^="ch"]').length;
            out.toc = document.querySelectorAll('nav a[href^="#ch"]').length;
            out.scripts = document.querySelectorAll('script, link[rel="stylesheet"]').length;
            return out;
        });
        for (const b of r.bad)
            problems.push('picture did not load: ' + b);
        for (const w of r.wide.slice(0, 10))
            problems.push('wider than the page: ' + w);
        if (r.sections !== 15)
            problems.push('chapters on the page: ' + r.sections + ', want 15');
        if (r.toc !== 15)
            problems.push('table of contents entries: ' + r.toc + ', want 15');
        if (r.scripts !== 0)
            problems.push('the page has ' + r.scripts + ' scripts or outside style sheets');
        await page.screenshot({ path: shot, fullPage: true });
        if (!problems.length)
            console.log('ok ' + r.n_img + ' pictures loaded, ' + r.sections + ' chapters, screenshot ' + shot);
    } finally {
        await browser.close();
    }
    for (const p of problems)
        console.log('FAIL: ' + p);
    process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
    console.log('FAIL: ' + (e && e.stack || e));
    process.exit(1);
});
