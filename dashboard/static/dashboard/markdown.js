// A small Markdown renderer that builds DOM nodes and never parses HTML: model output
// is text, and every piece of it reaches the page through createTextNode, so a reply
// containing <script> or <img onerror> shows those characters and runs nothing.
//
// Blocks: paragraphs (single newlines kept as line breaks), fenced code, headings,
// block quotes, bullet and numbered lists (nested by indentation), simple tables,
// rules. Inline: code, bold, italic, strike-through, links and bare URLs (http and
// https only). Anything else shows as written.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

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

function link(href, label) {
  const a = el('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  if (typeof label === 'string') a.textContent = label;
  else a.append(label);
  return a;
}

function isWordChar(ch) {
  return !!ch && /[\p{L}\p{N}]/u.test(ch);
}

// Find the closing delimiter `delim` for emphasis opened at `start` (just after it).
function findClose(text, start, delim) {
  let i = start;
  while (i < text.length) {
    const at = text.indexOf(delim, i);
    if (at < 0) return -1;
    const before = text[at - 1];
    const after = text[at + delim.length];
    const single = delim.length === 1;
    const okBefore = at > start && !/\s/.test(before);
    // `*a**` must not close `*` on the first star of `**`.
    const okAfter = !(single && after === delim) && !(delim[0] === '_' && isWordChar(after));
    if (okBefore && okAfter && text[at - 1] !== '\\') return at;
    i = at + delim.length;
  }
  return -1;
}

/** Render inline Markdown of `text` into `parent`. */
export function renderInline(text, parent) {
  let buf = '';
  const flush = () => {
    if (buf) parent.append(document.createTextNode(buf));
    buf = '';
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    const next = text[i + 1];
    if (ch === '\\' && next && /[\\`*_{}[\]()#+\-.!~|>]/.test(next)) {
      buf += next;
      i += 2;
      continue;
    }
    if (ch === '`') {
      let run = 1;
      while (text[i + run] === '`') run += 1;
      const fence = '`'.repeat(run);
      const end = text.indexOf(fence, i + run);
      if (end > 0) {
        flush();
        const code = el('code');
        code.textContent = text.slice(i + run, end).replace(/^ (.*) $/s, '$1');
        parent.append(code);
        i = end + run;
        continue;
      }
      buf += fence;
      i += run;
      continue;
    }
    if (ch === '[') {
      const close = text.indexOf('](', i + 1);
      const end = close > 0 ? text.indexOf(')', close + 2) : -1;
      if (close > 0 && end > 0 && !text.slice(i + 1, close).includes('\n')) {
        const href = safeUrl(text.slice(close + 2, end).split(/\s+/)[0]);
        if (href) {
          flush();
          const label = document.createDocumentFragment();
          renderInline(text.slice(i + 1, close), label);
          parent.append(link(href, label));
          i = end + 1;
          continue;
        }
      }
    }
    if ((ch === 'h' || ch === 'H') && /^https?:\/\//i.test(text.slice(i, i + 8)) &&
        !isWordChar(text[i - 1])) {
      const match = /^https?:\/\/[^\s<>"'`]+/i.exec(text.slice(i));
      let raw = match[0];
      while (/[.,;:!?)\]'"*_]$/.test(raw)) raw = raw.slice(0, -1);
      const href = safeUrl(raw);
      if (href) {
        flush();
        parent.append(link(href, raw));
        i += raw.length;
        continue;
      }
    }
    if (ch === '~' && next === '~') {
      const end = findClose(text, i + 2, '~~');
      if (end > 0) {
        flush();
        const del = el('del');
        renderInline(text.slice(i + 2, end), del);
        parent.append(del);
        i = end + 2;
        continue;
      }
    }
    if (ch === '*' || ch === '_') {
      const strong = next === ch;
      const delim = strong ? ch + ch : ch;
      const after = text[i + delim.length];
      const leftFlanking = after && !/\s/.test(after) &&
        !(ch === '_' && isWordChar(text[i - 1]));
      if (leftFlanking) {
        const end = findClose(text, i + delim.length, delim);
        if (end > 0) {
          flush();
          const node = el(strong ? 'strong' : 'em');
          renderInline(text.slice(i + delim.length, end), node);
          parent.append(node);
          i = end + delim.length;
          continue;
        }
      }
      buf += delim;
      i += delim.length;
      continue;
    }
    buf += ch;
    i += 1;
  }
  flush();
}

function paragraph(lines) {
  const p = el('p');
  lines.forEach((line, index) => {
    if (index) p.append(el('br'));
    renderInline(line.trim(), p);
  });
  return p;
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

function table(lines) {
  const wrap = el('div', 'md-table');
  const t = el('table');
  const head = splitRow(lines[0]);
  const align = splitRow(lines[1]).map((cell) =>
    cell.startsWith(':') && cell.endsWith(':') ? 'center' : cell.endsWith(':') ? 'right' : '');
  const thead = el('thead');
  const tr = el('tr');
  head.forEach((cell, index) => {
    const th = el('th');
    if (align[index]) th.style.textAlign = align[index];
    renderInline(cell, th);
    tr.append(th);
  });
  thead.append(tr);
  t.append(thead);
  const tbody = el('tbody');
  for (const line of lines.slice(2)) {
    const row = el('tr');
    splitRow(line).slice(0, head.length).forEach((cell, index) => {
      const td = el('td');
      if (align[index]) td.style.textAlign = align[index];
      renderInline(cell, td);
      row.append(td);
    });
    tbody.append(row);
  }
  t.append(tbody);
  wrap.append(t);
  return wrap;
}

function startsBlock(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line) || (line.includes('|') && next !== undefined && TABLE_SEP.test(next) &&
    next.includes('-'));
}

function indentOf(line) {
  const match = /^\s*/.exec(line)[0];
  return match.replace(/\t/g, '    ').length;
}

function list(lines, start) {
  const first = ITEM.exec(lines[start]);
  const base = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? 'ol' : 'ul');
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1) node.start = number;
  }
  let i = start;
  let items = [];
  let loose = false;
  while (i < lines.length) {
    const line = lines[i];
    const item = ITEM.exec(line);
    if (item && indentOf(item[1]) <= base + 1 && /\d/.test(item[2]) === ordered) {
      items.push([item[3]]);
      i += 1;
      continue;
    }
    if (!items.length) break;
    if (line.trim() === '') {
      // A blank line inside a list only continues it when an indented line follows.
      const following = lines[i + 1];
      const nextItem = following === undefined ? null : ITEM.exec(following);
      const sameList = nextItem && indentOf(nextItem[1]) <= base + 1 &&
        /\d/.test(nextItem[2]) === ordered;
      if (following !== undefined && following.trim() !== '' &&
          (sameList || (!nextItem && indentOf(following) > base) ||
           (nextItem && indentOf(nextItem[1]) > base + 1))) {
        loose = true;
        items[items.length - 1].push('');
        i += 1;
        continue;
      }
      break;
    }
    if (indentOf(line) > base) {
      items[items.length - 1].push(line.replace(new RegExp(`^\\s{0,${base + 4}}`), ''));
      i += 1;
      continue;
    }
    if (!startsBlock(line, lines[i + 1])) {  // a lazy continuation line
      items[items.length - 1].push(line.trim());
      i += 1;
      continue;
    }
    break;
  }
  for (const body of items) {
    const li = el('li');
    const inner = renderBlocks(body);
    if (!loose && inner.childNodes.length >= 1 && inner.firstChild.tagName === 'P') {
      // Tight list: the item's first paragraph without its <p>.
      const p = inner.firstChild;
      while (p.firstChild) li.append(p.firstChild);
      p.remove();
    }
    li.append(inner);
    node.append(li);
  }
  return [node, i];
}

function renderBlocks(lines) {
  const out = document.createDocumentFragment();
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const closing = new RegExp(`^ {0,3}\\${marker[0]}{${marker.length},}\\s*$`);
      const body = [];
      i += 1;
      while (i < lines.length && !closing.test(lines[i])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1;  // the closing fence (absent while a reply is still streaming)
      const pre = el('pre');
      const code = el('code');
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join('\n');
      pre.append(code);
      out.append(pre);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const h = el(`h${Math.min(heading[1].length + 2, 6)}`);
      renderInline(heading[2], h);
      out.append(h);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.append(el('hr'));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() !== '') {
        const quoted = QUOTE.exec(lines[i]);
        body.push(quoted ? quoted[1] : lines[i]);
        i += 1;
      }
      const quote = el('blockquote');
      quote.append(renderBlocks(body));
      out.append(quote);
      continue;
    }
    if (ITEM.test(line)) {
      const [node, next] = list(lines, i);
      out.append(node);
      i = next;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) &&
        lines[i + 1].includes('-')) {
      const rows = [line, lines[i + 1]];
      i += 2;
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
        rows.push(lines[i]);
        i += 1;
      }
      out.append(table(rows));
      continue;
    }
    const para = [line];
    i += 1;
    while (i < lines.length && lines[i].trim() !== '' && !startsBlock(lines[i], lines[i + 1])) {
      para.push(lines[i]);
      i += 1;
    }
    out.append(paragraph(para));
  }
  return out;
}

/** A DocumentFragment with `text` rendered as Markdown. */
export function renderMarkdown(text) {
  return renderBlocks(String(text ?? '').replace(/\r\n?/g, '\n').split('\n'));
}
