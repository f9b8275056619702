// gpt2_expected_ids.mjs: writes tests/data/tokenizer_cases.txt, the GPT-2 token ids that
// tests/test_tokenizer.c compares knob's BPE against. A dev script: the tests never run it.
//
//   cd /tmp && npm pack js-tiktoken && tar xzf js-tiktoken-*.tgz   # then, in package/: npm install
//   node scripts/dev/gpt2_expected_ids.mjs /tmp/package > tests/data/tokenizer_cases.txt
//   node scripts/dev/gpt2_expected_ids.mjs /tmp/package 50000 > /tmp/many.txt   (a deeper one-off check)
//
// The ids come from js-tiktoken (encoding "gpt2": OpenAI's ranks, its own merge loop). One change:
// JavaScript's \s differs from the \s of GPT-2's encoder.py (Python's regex module, the Unicode
// White_Space property) on U+0085 and U+FEFF, so the pattern is run with \s
// spelled out as White_Space. The script reports the cases where that changes the ids.
//
// File format: '#' lines are comments; each case is one line "TEXT<TAB>IDS" where TEXT is the
// case's UTF-8 bytes with printable ASCII as is, '\\' for a backslash and \xNN for every other
// byte (and for a leading '#'), and IDS the expected ids separated by spaces.
import { pathToFileURL } from 'node:url';

const pkg = process.argv[2];
if (!pkg) {
    console.error('usage: node gpt2_expected_ids.mjs PATH_TO_js-tiktoken_PACKAGE');
    process.exit(2);
}
const { Tiktoken } = await import(pathToFileURL(pkg + '/dist/index.js').href);
const gpt2 = (await import(pathToFileURL(pkg + '/dist/ranks/gpt2.js').href)).default;

const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const pat = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`;
const stock = new Tiktoken(gpt2);
const ref = new Tiktoken({ ...gpt2, pat_str: pat });

// --- hand-written cases ---------------------------------------------------------------------
const cases = [
    '',
    'Hello world',
    'Hello, world! How are you today?',
    'The quick brown fox jumps over the lazy dog.',
    "It's a dog's life; we're sure they've seen what I'm doing, you'll see, he'd know.",
    "IT'S LOUD. HE'S HERE. WE'RE DONE. I'M OK. YOU'LL SEE. THEY'VE GONE. HE'D GO.",
    "don't can't won't shouldn't 'tis 'twas o'clock rock'n'roll",
    'It\u2019s a curly apostrophe \u2018quoted\u2019 and \u201cdouble\u201d',
    "'s 's's ''s 'S 'Ll 'lL",
    '   leading spaces',
    'trailing spaces   ',
    'tabs\tin\t\tthe\t\t\tmiddle\t',
    'new\nlines\n\nand\n\n\nmore\n',
    'mixed \t \n \r\n  \n\t  whitespace  \n',
    '\n\n\n\n',
    '                                ',
    ' a  b   c    d     e      f',
    'windows\r\nline\r\nendings\r\n',
    '12345 678 9 0 3.14159 2,718 1e10 -42 +7 0x1F 1_000_000',
    '2024-05-17T12:34:56Z 192.168.0.1 555-1234',
    '\u0661\u0662\u0663 \u0967\u0968\u0969 \u2160\u2161\u2162 \u00bd \u00b2\u00b3',
    '!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}',
    '<<>> <= >= == != === !== => -> :: ;; ,, .. // /* */ <!-- -->',
    '"quoted" \'single\' `back` \\ \\\\ / | ~',
    'def f(x):\n    return x * 2  # comment\n\nprint(f(21))\n',
    'int main(void) {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}\n',
    'for (let i = 0; i < n; i++) { a[i] += b[i] ** 2; }',
    '<html><body class="x">Hi &amp; bye</body></html>',
    '{"key": [1, 2, {"nested": null}], "t": true}',
    'SELECT * FROM users WHERE id = 7 AND name LIKE \'%a%\';',
    'https://example.com/path?query=1&x=y#frag',
    '\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3002',
    '\u6771\u4eac\u3068\u5927\u962a \u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01',
    '\u4e2d\u6587\u6587\u672c\uff0c\u6c49\u5b57\u548c\u6807\u70b9\u3002\u4f60\u597d\u4e16\u754c\uff01',
    '\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.',
    '\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, \u043f\u0440\u0438\u0432\u0435\u0442!',
    '\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b1\u03b9 \u03bc\u03b1\u03b8\u03b7\u03bc\u03b1\u03c4\u03b9\u03ba\u03ac: \u03b1 + \u03b2 = \u03b3',
    '\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0646\u0635 \u0645\u0646 \u0627\u0644\u064a\u0645\u064a\u0646',
    '\u05e2\u05d1\u05e8\u05d9\u05ea \u05e9\u05dc\u05d5\u05dd',
    '\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u0928\u092e\u0938\u094d\u0924\u0947',
    '\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35',
    'caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00e5ngstr\u00f6m',
    'cafe\u0301 combining e\u0301 a\u0308 n\u0303',
    '\ud83d\udc4d \ud83d\udc4d\ud83c\udffb \ud83d\udc4d\ud83c\udffc \ud83d\udc4d\ud83c\udffd \ud83d\udc4d\ud83c\udffe \ud83d\udc4d\ud83c\udfff',
    '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 family \ud83d\udc69\ud83c\udffd\u200d\ud83d\udcbb coder',
    '\ud83c\uddef\ud83c\uddf5\ud83c\uddfa\ud83c\uddf8 flags \ud83c\udff3\ufe0f\u200d\ud83c\udf08',
    '\u2764\ufe0f \u263a \u2603 \u2600\ufe0f emoji with selectors',
    '\ud83d\ude00\ud83d\ude03\ud83d\ude04\ud83d\ude01\ud83d\ude06\ud83d\ude05\ud83d\ude02\ud83e\udd23',
    'math \u2211 \u222b \u221e \u2264 \u2265 \u2260 \u00b1 \u00d7 \u00f7 \u221a \u03c0',
    '\u00a9 \u00ae \u2122 \u20ac \u00a3 \u00a5 \u20b9 \u00a7 \u00b6 \u2020 \u2021',
    'nbsp\u00a0here and\u3000ideographic\u2003em\u2009thin\u200bzero-width',
    'line\u2028separator\u2029paragraph',
    'nel\u0085next line and bom\ufeffhere',
    '\u0085\u0085 \ufeff\ufeff',
    'control \u0001\u0002\u0007\u001b[0m \u007f chars\u0000nul',
    '<|endoftext|> is plain text here',
    'a<|endoftext|>b<|endoftext|><|endoftext|>',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    'a'.repeat(3000),
    ' ' + 'ab'.repeat(700),
    '1'.repeat(500) + ' ' + '!'.repeat(300),
    'Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
    '=' .repeat(80) + '\n' + '-'.repeat(80),
    ' '.repeat(200) + 'x',
    '\t'.repeat(50) + '\n'.repeat(50),
    'MixedCASE camelCase snake_case kebab-case SCREAMING_SNAKE PascalCase',
    'A.B.C. U.S.A. e.g. i.e. etc. vs. Dr. Mr. Mrs.',
    '\u0130stanbul \u0131\u0130 \u01c5 \u1e9e \u2126 \u212b',
];

// --- generated cases: a seeded mix of characters from many classes -------------------------
let seed = 20240517;
const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
};
const pool = [
    'a', 'b', 'e', 'z', 'Q', 'Z', 'th', 'ing', ' ', ' ', '  ', '\t', '\n', '\r\n', "'", "'s", "'ll", "'S",
    '0', '7', '42', '.', ',', '!', '?', '-', '_', '(', ')', '"', '#', '$', '%', '\\', '/', '|', '~', '`',
    '\u00e9', '\u00df', '\u00a0', '\u3000', '\u65e5', '\u672c', '\u3042', '\u30a2', '\u4e2d', '\ud55c',
    '\u0416', '\u03a9', '\u0627', '\u05d0', '\u0939', '\u094d', '\u0e01', '\u0301', '\u200d', '\ufe0f',
    '\ud83d\udc4d', '\ud83c\udffd', '\ud83d\ude00', '\ud83c\uddef', '\u2764', '\u2211', '\u20ac', '\u2019',
    '\u00bd', '\u0661', '\u2160', '\u0001', '\u001f', '\u007f', '\u0085', '\u2028',
];
const n_generated = +(process.argv[3] || 300);   // more for a one-off deeper check
for (let k = 0; k < n_generated; k++) {
    let s = '';
    const len = 1 + rnd(40);
    for (let i = 0; i < len; i++) s += pool[rnd(pool.length)];
    cases.push(s);
}

// --- output --------------------------------------------------------------------------------
const escape = (s) => {
    let out = '';
    for (const b of new TextEncoder().encode(s)) {
        if (b === 0x5c) out += '\\\\';
        else if (b >= 0x20 && b < 0x7f && !(b === 0x23 && out === '')) out += String.fromCharCode(b);
        else out += '\\x' + b.toString(16).padStart(2, '0');
    }
    return out;
};
const lines = [
    '# GPT-2 token ids for tests/test_tokenizer.c, written by scripts/dev/gpt2_expected_ids.mjs',
    '# (js-tiktoken, encoding gpt2, with \\s as Unicode White_Space like GPT-2\'s encoder.py).',
    '# Format: TEXT<TAB>IDS; TEXT is UTF-8 with \\\\ and \\xNN escapes; <|endoftext|> is plain text.',
];
let differ = 0;
for (const c of cases) {
    const ids = ref.encode(c, [], []);
    const js = stock.encode(c, [], []);
    if (ids.join() !== js.join()) {
        differ++;
        console.error(`note: JavaScript's \\s gives other ids for ${JSON.stringify(c).slice(0, 60)}`);
    }
    lines.push(escape(c) + '\t' + ids.join(' '));
}
console.error(`${cases.length} cases, ${differ} where JavaScript's \\s differs from encoder.py's`);
process.stdout.write(lines.join('\n') + '\n');
