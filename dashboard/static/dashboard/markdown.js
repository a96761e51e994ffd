// Markdown for model replies, through well-kept libraries (vendored under
// static/vendor/, loaded as classic scripts before this module): markdown-it parses,
// markdown-it-texmath with KaTeX renders $math$ and $$math$$ (as MathML: no inline
// styles, so the page's strict CSP holds), highlight.js colours code blocks, and
// DOMPurify sanitises the HTML before it reaches the page. markdown-it runs with
// html: false, so HTML in a reply is shown as text; DOMPurify is the second wall.

const { markdownit, DOMPurify, hljs, katex, texmath } = window;

/** The safe href for a link target, or null: only absolute http(s) URLs. */
export function safeUrl(raw) {
  const text = String(raw || '').trim();
  if (!/^https?:\/\//i.test(text)) return null;
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function highlight(code, lang) {
  if (!lang || !hljs.getLanguage(lang)) return '';  // markdown-it escapes it then
  try {
    return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
  } catch {
    return '';
  }
}

const md = markdownit({ html: false, linkify: true, breaks: true, highlight })
  .use(texmath, { engine: katex, delimiters: 'dollars',
    katexOptions: { output: 'mathml', throwOnError: false } });
// Only http(s) links; anything else (javascript:, data:, relative) stays text.
md.validateLink = (url) => safeUrl(url) !== null;

const PURIFY = {
  USE_PROFILES: { html: true, mathMl: true },
  ADD_TAGS: ['eq', 'eqn'],  // texmath's wrappers of inline and display math
  FORBID_ATTR: ['style'],
  RETURN_DOM_FRAGMENT: true,
};

/** A DocumentFragment with `text` rendered as Markdown. */
export function renderMarkdown(text) {
  const fragment = DOMPurify.sanitize(md.render(String(text ?? '')), PURIFY);
  for (const link of fragment.querySelectorAll('a[href]')) {
    link.target = '_blank';
    link.rel = 'noopener noreferrer nofollow';
  }
  for (const code of fragment.querySelectorAll('pre > code[class*="language-"]')) {
    const lang = /language-([\w+#.-]+)/.exec(code.className);
    if (lang) code.dataset.lang = lang[1];  // shown as the block's label
    code.classList.add('hljs');
  }
  for (const table of fragment.querySelectorAll('table')) {
    const box = document.createElement('div');
    box.className = 'md-table';  // scrolls sideways on a phone
    table.replaceWith(box);
    box.append(table);
  }
  return fragment;
}
