// One open chat: its history, its socket and the live turn.
//
// Events are handled one at a time, in arrival order (a promise chain), so a handler
// that has to ask the API something (the text of a queued message, the history after a
// gap) holds the events behind it instead of letting them overtake it.
//
// Reconnecting: the view keeps the seq of the last event it applied. After a drop it
// reconnects with `?since=<seq>`; the server replays what was missed and the view drops
// anything it has already seen. When the server no longer has all of it
// (`replay_complete: false`, or its numbering restarted), the view reloads the history
// and continues from the state's seq, as on a fresh load.

import { h, say, fmt } from './util.js';
import { renderMarkdown } from './markdown.js';

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;
const RENDER_EVERY_MS = 30;
const CLOSE_RATE_LIMITED = 4029;  // the server's "429" for sockets
const RATE_LIMITED_RETRY_MS = 30000;

const STOP_REASONS = {
  max_tokens: 'The reply reached the model\'s output limit.',
  tools_denied: 'The turn stopped after three rounds in a row of denied tool calls.',
  max_tool_rounds: 'The turn stopped at the limit of tool rounds.',
};

// Error codes after which the turn gave no answer: offered a Retry.
const RETRYABLE = new Set(['upstream_error', 'no_profile', 'turn_failed', 'interrupted']);

/** "model · 12 in / 40 out · 1.2 s" for a reply. */
function replyMeta(message, seconds = null) {
  const parts = [];
  if (message.model) parts.push(message.model);
  const usage = message.usage || {};
  if (usage.input_tokens || usage.output_tokens) {
    parts.push(`${fmt(usage.input_tokens)} in / ${fmt(usage.output_tokens)} out`);
  }
  if (seconds !== null) parts.push(`${seconds.toFixed(1)} s`);
  return parts.join(' · ');
}

/** A button that copies ``textNow()`` and says so. */
function copyButton(textNow, label) {
  const button = h('button', { type: 'button', class: 'ghost small copy', title: label,
    'aria-label': label }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(textNow());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
  return button;
}

/** A copy button on every code block of rendered Markdown. */
function addCodeCopy(root) {
  for (const pre of root.querySelectorAll('pre')) {
    if (pre.querySelector(':scope > .copy')) continue;
    const code = pre.querySelector('code') || pre;
    // Without the newline the fence leaves at the end of the block.
    pre.prepend(copyButton(() => code.textContent.replace(/\n$/, ''), 'Copy code'));
  }
}

/** The text of a message's content: a string, or a list of content blocks. Blocks are
 * separate paragraphs (a message's text and an attachment's note, two pasted parts), so
 * they are joined with a blank line, never run together. */
export function textOf(content) {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((block) => {
      if (typeof block === 'string') return block;
      if (block && block.type === 'text') return block.text || '';
      return block && block.type ? `[${block.type}]` : '';
    }).filter((part) => part !== '').join('\n\n');
  }
  return JSON.stringify(content);
}

function parseArgs(raw) {
  if (raw && typeof raw === 'object') return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw ?? '';
  }
}

const pretty = (value) => (typeof value === 'string' ? value : JSON.stringify(value, null, 2));

function summaryOf(args) {
  if (!args || typeof args !== 'object') return typeof args === 'string' ? args : '';
  const first = args.command ?? args.path ?? args.file_path ?? Object.values(args)[0];
  if (first === undefined) return '';
  const text = typeof first === 'string' ? first : JSON.stringify(first);
  return text.split('\n')[0].slice(0, 80);
}

/** A tool call: name, arguments and result, collapsible; the approval prompt below. */
class ToolCard {
  constructor(id, name) {
    this.id = id;
    this.name = name || 'tool';
    this.hasArgs = false;
    this.badge = h('span', { class: 'badge' });
    this.brief = h('code', { class: 'tool-brief' });
    this.argsPre = h('pre', { class: 'tool-args' });
    this.resultPre = h('pre', { class: 'tool-result' });
    this.notice = h('p', { class: 'tool-notice', hidden: true });
    this.resultBox = h('div', { class: 'tool-section', hidden: true },
      h('div', { class: 'tool-label', text: 'Result' }), this.resultPre);
    this.details = h('details', {},
      h('summary', {}, h('span', { class: 'tool-name', text: this.name }), this.brief,
        this.badge),
      h('div', { class: 'tool-section' }, h('div', { class: 'tool-label', text: 'Arguments' }),
        this.argsPre),
      this.notice, this.resultBox);
    this.approval = h('div', { class: 'approval', hidden: true });
    this.el = h('div', { class: 'tool', dataset: { callId: id } }, this.details, this.approval);
    this.setArgs(undefined);
    this.setBadge('requested', 'requested');
  }

  setArgs(args) {
    this.hasArgs = args !== undefined;
    this.argsPre.textContent = this.hasArgs ? pretty(args) : '(shown when the turn ends)';
    this.brief.textContent = this.hasArgs ? summaryOf(args) : '';
  }

  setBadge(state, text) {
    this.el.dataset.state = state;
    this.badge.className = `badge ${state}`;
    this.badge.textContent = text;
  }

  setNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  setResult(content, isError) {
    const text = textOf(content);
    this.resultPre.textContent = text;
    this.resultBox.hidden = false;
    const denied = isError && /^(Denied|Cancelled)\b/.test(text);
    if (denied) this.setBadge('denied', text.startsWith('Cancelled') ? 'cancelled' : 'denied');
    else if (isError) this.setBadge('error', 'error');
    else this.setBadge('done', 'done');
    this.approval.hidden = true;
  }
}

export class ChatView {
  constructor(app, chatId) {
    this.app = app;
    this.api = app.api;
    this.els = app.els;
    this.chatId = chatId;
    this.detail = null;
    this.closed = false;
    this.socket = null;
    this.ready = false;          // the current socket has sent agent.state
    this.lastSeq = null;         // seq of the last event applied
    this.attempts = 0;
    this.connects = 0;
    this.retryTimer = null;
    this.chain = Promise.resolve();
    this.cards = new Map();      // tool call id -> ToolCard
    this.userEls = new Map();    // message id -> user bubble
    this.contents = new Map();   // message id -> content of user messages
    this.sending = [];           // {text, el}: sent here, not yet acknowledged
    this.approvals = null;       // {ids: Set, verdicts: {}}
    this.turn = null;            // {textEl, text, reconcile}
    this.running = false;
    this.renderTimer = null;
    this.profile = null;
    this.notify = '';            // the destination id (a string) told when turns end
    this.turnStarted = 0;        // performance.now() when the live turn started
    this.reloadOnComplete = false;  // a retry/regenerate/edit runs: reload when it ends
    this.handlers = {
      'agent.queued': this.onQueued,
      'agent.turn_started': this.onTurnStarted,
      'agent.text_delta': (d) => this.appendText(d.text || ''),
      'agent.text': (d) => { this.appendText(d.text || ''); this.endText(); },
      'agent.tool_request': this.onToolRequest,
      'agent.tool_denied': this.onToolDenied,
      'agent.tool_use': (d) => {
        this.endText();
        this.ensureCard(d.tool_use_id, d.tool_name, d.arguments).setBadge('running', 'running');
      },
      'agent.tool_result': this.onToolResult,
      'agent.turn_complete': this.onTurnComplete,
      'agent.cancelled': this.onCancelled,
      'agent.error': this.onError,
      'agent.compaction_started': (d) => this.note(
        `Compacting the context: ${fmt(d.tokens_before)} of ${fmt(d.context_window)} tokens ` +
        'in use…', 'compaction'),
      'agent.context_compacted': this.onCompacted,
      'agent.title': (d) => this.app.showTitle(this, d.title || ''),
    };
  }

  // -- lifecycle ------------------------------------------------------------------------
  async open() {
    const { transcript, queued } = this.els;
    transcript.replaceChildren();
    queued.replaceChildren();
    say(this.els.chatError, '');
    say(this.els.chatInfo, '');
    this.setRunning(false);
    this.setStatus('Loading…', 'warn');
    let detail;
    try {
      detail = await this.api('GET', `/api/chats/${this.chatId}`);
    } catch (err) {
      if (this.closed) return;
      this.setStatus('');
      say(this.els.chatError, err.status === 404
        ? 'This chat does not exist (it may have been deleted).' : err.detail);
      return;
    }
    if (this.closed) return;
    this.detail = detail;
    this.app.showChatHead(detail);
    this.renderHistory(detail);
    this.loadContext();
    this.loadProfiles();
    this.loadNotify();
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renderTimer);
    const ws = this.socket;
    this.socket = null;
    if (ws) ws.close(1000);
  }

  // -- socket ---------------------------------------------------------------------------
  connect() {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let url = `${scheme}://${location.host}/ws/${this.chatId}` +
      `?token=${encodeURIComponent(this.app.token())}`;
    if (this.lastSeq !== null) url += `&since=${this.lastSeq}`;
    const ws = new WebSocket(url);
    this.connects += 1;
    this.socket = ws;
    this.ready = false;
    ws.onmessage = (message) => {
      if (this.socket !== ws) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.chain = this.chain.then(() => this.handle(event, ws)).catch((err) => {
        console.error(err);
        say(this.els.chatError, `Could not show an event: ${err.message}`);
      });
    };
    ws.onclose = (event) => this.onClose(ws, event);
  }

  onClose(ws, event) {
    if (this.socket !== ws) return;
    this.socket = null;
    this.ready = false;
    if (this.closed) return;
    if (event.code === 4001) {
      this.setStatus('');
      this.app.authLost();
      return;
    }
    if (event.code === 4004) {
      this.setStatus('');
      say(this.els.chatError, 'This chat no longer exists.');
      return;
    }
    if (event.code === CLOSE_RATE_LIMITED) {
      this.setStatus('Too many wrong tokens from this address — retrying later…', 'warn');
      this.retryTimer = setTimeout(() => this.connect(), RATE_LIMITED_RETRY_MS);
      return;
    }
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts);
    this.attempts += 1;
    this.setStatus('Connection lost — reconnecting…', 'warn');
    this.retryTimer = setTimeout(() => this.connect(), delay * (0.8 + Math.random() * 0.4));
  }

  /** The browser says the network is back: do not wait for the backoff. */
  reconnectNow() {
    if (!this.closed && !this.socket) {
      this.attempts = 0;
      this.connect();
    }
  }

  sendFrame(frame) {
    const ws = this.socket;
    if (!ws || !this.ready || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  async handle(event, ws) {
    if (this.closed) return;
    if (event.type === 'agent.state') {
      await this.onState(event, ws);
      return;
    }
    const data = event.data || {};
    if (event.type === 'agent.error' && data.code === 'invalid_event') {
      // For this socket only, and it carries the current seq: not part of the stream.
      say(this.els.chatError, data.message);
      return;
    }
    if (typeof event.seq === 'number') {
      if (this.lastSeq !== null && event.seq <= this.lastSeq) return;  // seen already
      this.lastSeq = event.seq;
    }
    if (event.type === 'agent.files_changed' && this.app.files) this.app.files.changed(data);
    const handler = this.handlers[event.type];
    if (!handler) return;
    const stick = this.nearBottom();
    await handler.call(this, data);
    if (stick) this.scrollToEnd();
  }

  async onState(event, ws) {
    const state = event.data || {};
    const fresh = this.lastSeq === null;
    const gap = !fresh && (state.replay_complete === false || event.seq < this.lastSeq);
    // A first socket that closed before its state leaves the history loaded at open
    // unanchored: load it again.
    if (gap || (fresh && this.connects > 1)) await this.reloadHistory();
    if (this.closed) return;
    if (fresh || gap) {
      this.lastSeq = event.seq;
      this.joinLive(state);
    }
    this.attempts = 0;
    if (this.socket === ws) {
      this.ready = true;
      this.setStatus('');
    }
  }

  /** Pick up a turn already running: history is on screen, add what it streamed so far
   * and any approval it waits for. */
  joinLive(state) {
    this.setRunning(!!state.running);
    if (!state.running) return;
    this.turn = this.newTurn();
    this.turn.reconcile = true;  // a message may have been saved between GET and connect
    if (state.partial_text) this.appendText(state.partial_text);
    const pending = state.pending_tool_calls || [];
    if (pending.length) this.onToolRequest({ tool_calls: pending });
    this.scrollToEnd();
  }

  // -- history --------------------------------------------------------------------------
  renderHistory(detail) {
    const { transcript, queued } = this.els;
    transcript.replaceChildren();
    queued.replaceChildren();
    this.cards.clear();
    this.userEls.clear();
    this.approvals = null;
    this.turn = null;
    // Each compaction's summary goes right after the messages it replaced.
    const compactions = [...(detail.compactions || [])];
    const summariesBefore = (position) => {
      while (compactions.length && (position === null ||
             (compactions[0].positions || [])[1] < position)) {
        transcript.append(this.summaryNote(compactions.shift()));
      }
    };
    let box = null;
    const errors = [...(detail.errors || [])];
    const versions = new Map();  // id of the replacing message -> its box of old versions
    const lastCurrent = [...(detail.messages || [])].reverse().find((m) => m.current !== false);
    let userId = null;           // the user message the messages below answer
    for (const message of detail.messages || []) {
      if (message.position !== null && message.position !== undefined) {
        summariesBefore(message.position);
      }
      let target = transcript;
      if (message.current === false) {
        // Replaced by a retry, regenerate or edit: kept, folded where it was.
        target = versions.get(message.superseded_by);
        if (!target) {
          target = h('details', { class: 'versions' }, h('summary'));
          target.count = 0;
          versions.set(message.superseded_by, target);
          transcript.append(target);
        }
        target.count += 1;
        target.firstChild.textContent = `Earlier version (${target.count} message(s), ` +
          'replaced by a retry or an edit)';
      } else if (message.compacted) {
        if (!box || box !== transcript.lastElementChild) {
          box = h('details', { class: 'compacted' }, h('summary'));
          box.count = 0;
          transcript.append(box);
        }
        box.count += 1;
        box.firstChild.textContent = `${box.count} earlier message(s), compacted`;
        target = box;
      }
      if (message.role === 'user') userId = message.id;
      this.renderMessage(message, target, message.current === false ? null : userId);
      while (errors.length && errors[0].after_position === message.position) {
        const error = errors.shift();
        const last = error.current && message === lastCurrent;
        target.append(this.errorNote(error, last ? error.message_id : null));
      }
    }
    for (const error of errors) transcript.append(this.errorNote(error, null));
    summariesBefore(null);
    for (const message of detail.queued || []) {
      this.contents.set(message.id, message.content);
      this.addQueued(message.id, message.content);
    }
    for (const pending of this.sending) queued.append(pending.el);
    if (!transcript.childNodes.length) {
      transcript.append(h('p', { class: 'empty', text: 'No messages yet. Say hello below.' }));
    }
    this.scrollToEnd();
  }

  summaryNote(compaction) {
    return h('details', { class: 'summary-note' },
      h('summary', { text: `Summary of the messages above (${compaction.trigger} ` +
        `compaction, ${fmt(compaction.tokens_before)} → ${fmt(compaction.tokens_after)} ` +
        'tokens)' }),
      h('div', { class: 'md' }, renderMarkdown(compaction.summary || '')));
  }

  renderMessage(message, target, userId) {
    if (message.role === 'user') {
      this.contents.set(message.id, message.content);
      const el = this.userBubble(textOf(message.content), message.id);
      if (userId !== null) this.addUserActions(el, message.id, message.content);
      this.userEls.set(message.id, el);
      target.append(el);
    } else if (message.role === 'assistant') {
      const text = textOf(message.content);
      if (text) {
        const el = this.assistantBubble(text, message.status, replyMeta(message));
        if (userId !== null) this.addReplyActions(el, userId, () => text);
        target.append(el);
      }
      for (const call of message.tool_calls || []) {
        const fn = call.function || call;
        this.ensureCard(call.id, fn.name, parseArgs(fn.arguments), target);
      }
    } else if (message.role === 'tool') {
      const card = this.ensureCard(message.tool_call_id, message.tool_name, undefined, target);
      card.setResult(message.content, message.is_error);
    } else if (message.role === 'system') {
      target.append(h('details', { class: 'summary-note' },
        h('summary', { text: 'Summary of the earlier conversation' }),
        h('div', { class: 'md' }, renderMarkdown(textOf(message.content)))));
    }
  }

  async reloadHistory() {
    try {
      const detail = await this.api('GET', `/api/chats/${this.chatId}`);
      if (this.closed) return;
      this.detail = detail;
      this.renderHistory(detail);
    } catch (err) {
      say(this.els.chatError, err.detail);
    }
  }

  /** Calls the policy allowed without asking have no request event: their arguments
   * come from the saved history once the turn is over. */
  async fillArguments() {
    try {
      const detail = await this.api('GET', `/api/chats/${this.chatId}`);
      for (const message of detail.messages || []) {
        for (const call of message.tool_calls || []) {
          const card = this.cards.get(call.id);
          if (card && !card.hasArgs) card.setArgs(parseArgs((call.function || call).arguments));
        }
      }
    } catch {
      // The cards keep their placeholder; the next load shows the arguments.
    }
  }

  async contentOf(messageId) {
    if (!this.contents.has(messageId)) {
      try {
        const detail = await this.api('GET', `/api/chats/${this.chatId}`);
        for (const message of [...(detail.messages || []), ...(detail.queued || [])]) {
          if (message.role === 'user') this.contents.set(message.id, message.content);
        }
      } catch {
        return '';
      }
    }
    return this.contents.get(messageId) ?? '';
  }

  // -- building blocks ------------------------------------------------------------------
  userBubble(text, id) {
    return h('div', { class: 'msg user', dataset: { messageId: id ?? '' } },
      h('div', { class: 'bubble', text }), h('div', { class: 'meta' }));
  }

  assistantBubble(text, status, about = '') {
    const state = status === 'interrupted' || status === 'cancelled' ? `(${status})` : '';
    const meta = [about, state].filter(Boolean).join(' ');
    const bubble = h('div', { class: 'bubble md' }, renderMarkdown(text));
    addCodeCopy(bubble);
    return h('div', { class: 'msg assistant' }, bubble,
      meta ? h('div', { class: 'meta', text: meta }) : null);
  }

  /** Copy and Regenerate under a reply; ``userId`` is the message it answered. */
  addReplyActions(el, userId, textNow) {
    el.append(h('div', { class: 'msg-actions' },
      copyButton(textNow, 'Copy reply'),
      h('button', { type: 'button', class: 'ghost small', title: 'Ask for another answer; '
        + 'this one stays reachable', onclick: () => this.resend(userId, 'regenerate') },
      'Regenerate')));
  }

  /** Copy and Edit under a user message. */
  addUserActions(el, id, content) {
    const text = textOf(content);
    el.append(h('div', { class: 'msg-actions' }, copyButton(() => text, 'Copy message'),
      typeof content === 'string'
        ? h('button', { type: 'button', class: 'ghost small',
          onclick: () => this.startEdit(el, id, text) }, 'Edit') : null));
  }

  startEdit(el, id, text) {
    if (el.querySelector('form')) return;
    const input = h('textarea', { class: 'edit-input', rows: 3, 'aria-label': 'Edited message' });
    input.value = text;
    const form = h('form', { class: 'edit-form' }, input,
      h('div', { class: 'msg-actions' },
        h('button', { type: 'submit', class: 'primary small' }, 'Send edited'),
        h('button', { type: 'button', class: 'small', onclick: () => form.remove() },
          'Cancel')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (input.value.trim()) this.resend(id, 'edit', input.value);
    });
    el.append(form);
    input.focus();
  }

  /** An error kept in the history: the sentence, the code, the technical detail folded
   * away, and Retry when ``retryId`` (the failed turn's user message) is given. */
  errorNote(error, retryId) {
    const el = h('div', { class: 'note error', role: 'alert', dataset: { code: error.code } },
      h('span', { class: 'error-text', text: `${error.message || 'Something went wrong.'} ` }),
      h('code', { class: 'error-code', text: error.code || '' }));
    if (error.detail) {
      el.append(h('details', { class: 'error-detail' },
        h('summary', { text: 'Technical detail' }), h('pre', { text: error.detail })));
    }
    if (retryId !== null && retryId !== undefined && error.retryable !== false) {
      el.append(h('div', { class: 'msg-actions' },
        h('button', { type: 'button', class: 'primary small retry',
          onclick: () => this.resend(retryId, 'regenerate') }, 'Retry')));
    }
    if (error.current === false) el.classList.add('old');
    return el;
  }

  /** Retry, regenerate or edit. The new turn streams in live like any other; when it is
   * complete the history is reloaded, which shows the replaced messages folded (the
   * server keeps them). In the event chain, so the turn's events wait for the answer. */
  resend(messageId, how, content) {
    say(this.els.chatError, '');
    this.chain = this.chain.then(async () => {
      try {
        const body = how === 'edit' ? { content } : {};
        await this.api('POST', `/api/chats/${this.chatId}/messages/${messageId}/${how}`, body);
        this.reloadOnComplete = true;
      } catch (err) {
        say(this.els.chatError, err.detail);
      }
    });
    return this.chain;
  }

  ensureCard(id, name, args, target) {
    let card = this.cards.get(id);
    if (!card) {
      card = new ToolCard(id, name);
      this.cards.set(id, card);
      (target || this.els.transcript).append(card.el);
    }
    if (args !== undefined && !card.hasArgs) card.setArgs(args);
    return card;
  }

  note(text, kind = '') {
    this.endText();
    const el = h('div', { class: `note ${kind}`.trim(), text });
    if (kind === 'error') el.setAttribute('role', 'alert');
    this.els.transcript.append(el);
    return el;
  }

  newTurn() {
    return { textEl: null, text: '', reconcile: false };
  }

  addQueued(id, content) {
    const text = textOf(content);
    // A message sent with attachments comes back with their notes after its text.
    const mine = this.sending.findIndex((pending) => pending.text === text
      || (pending.attached && text.startsWith(pending.text)));
    if (mine >= 0) {
      this.sending[mine].el.remove();
      this.sending.splice(mine, 1);
    }
    const el = this.userBubble(text, id);
    el.classList.add('queued');
    el.querySelector('.meta').textContent = 'queued';
    this.els.queued.append(el);
    this.userEls.set(id, el);
  }

  // -- streamed text --------------------------------------------------------------------
  appendText(text) {
    if (!this.turn) this.turn = this.newTurn();
    const turn = this.turn;
    if (!turn.textEl) {
      turn.text = '';
      turn.textEl = h('div', { class: 'bubble md' });
      this.els.transcript.append(h('div', { class: 'msg assistant live' }, turn.textEl));
    }
    turn.text += text;
    if (!this.renderTimer) {
      this.renderTimer = setTimeout(() => {
        this.renderTimer = null;
        const stick = this.nearBottom();
        this.renderText();
        if (stick) this.scrollToEnd();
      }, RENDER_EVERY_MS);
    }
  }

  renderText() {
    const turn = this.turn;
    if (turn && turn.textEl) turn.textEl.replaceChildren(renderMarkdown(turn.text));
  }

  /** The current text bubble is done: what comes next (a tool call, a note) goes below. */
  endText() {
    clearTimeout(this.renderTimer);
    this.renderTimer = null;
    this.renderText();
    if (this.turn && this.turn.textEl) {
      const reply = this.turn.textEl.parentElement;
      reply.classList.remove('live');
      reply.text = this.turn.text;
      addCodeCopy(this.turn.textEl);
      this.turn.lastReply = reply;
      this.turn.textEl = null;
      this.turn.text = '';
    }
  }

  // -- events ---------------------------------------------------------------------------
  async onQueued(data) {
    const id = data.message_id;
    if (this.userEls.has(id)) return;
    const content = await this.contentOf(id);
    if (!this.closed && !this.userEls.has(id)) this.addQueued(id, content);
  }

  async onTurnStarted(data) {
    this.endText();
    this.setRunning(true);
    let el = this.userEls.get(data.message_id);
    if (!el) {
      const content = await this.contentOf(data.message_id);
      if (this.closed) return;
      // agent.queued's handler may have shown it while this one waited: never twice.
      if (!this.userEls.has(data.message_id)) this.addQueued(data.message_id, content);
      el = this.userEls.get(data.message_id);
    }
    if (el.parentElement === this.els.queued) {
      el.classList.remove('queued');
      el.querySelector('.meta').textContent = '';
      this.els.transcript.querySelector(':scope > .empty')?.remove();
      this.els.transcript.append(el);
    }
    this.turn = this.newTurn();
    this.turn.messageId = data.message_id;
    this.turnStarted = performance.now();
  }

  onToolRequest(data) {
    this.endText();
    for (const call of data.tool_calls || []) {
      const card = this.ensureCard(call.id, call.name, call.arguments);
      card.setBadge('asking', 'waiting for approval');
      card.details.open = true;
    }
    this.askApproval(data.tool_calls || []);
  }

  onToolDenied(data) {
    this.endText();
    for (const call of data.tool_calls || []) {
      const card = this.ensureCard(call.id, call.name, call.arguments);
      card.setBadge('denied', 'denied by policy');
      card.setNotice(data.reason || '');
    }
  }

  onToolResult(data) {
    this.endText();
    const card = this.ensureCard(data.tool_use_id, data.tool_name, undefined);
    card.setResult(data.content, data.is_error);
    this.dropApproval(data.tool_use_id);
  }

  async onTurnComplete(data) {
    this.endText();
    const lastReply = this.turn && this.turn.lastReply;
    const userId = this.turn && this.turn.messageId;
    if (lastReply && data.stop_reason !== 'error') {
      const seconds = this.turnStarted ? (performance.now() - this.turnStarted) / 1000 : null;
      const meta = replyMeta({ model: data.model, usage: data.usage }, seconds);
      if (meta) lastReply.append(h('div', { class: 'meta', text: meta }));
      if (userId !== undefined) this.addReplyActions(lastReply, userId, () => lastReply.text);
    }
    this.clearApprovals();
    const reason = STOP_REASONS[data.stop_reason];
    if (reason) this.note(reason, 'warn');
    const reconcile = (this.turn && this.turn.reconcile) || this.reloadOnComplete;
    this.reloadOnComplete = false;
    this.finishTurn();
    // Joined mid-turn: a reply may have been saved between the history load and the
    // socket's state, so take the saved turn as the truth now that it is complete.
    if (reconcile) await this.reloadHistory();
    else if ([...this.cards.values()].some((card) => !card.hasArgs)) await this.fillArguments();
  }

  onCancelled(data) {
    this.clearApprovals();
    this.note(data.message || 'The turn was cancelled.', 'cancelled');
    this.finishTurn();
  }

  onError(data) {
    this.endText();
    const retryId = RETRYABLE.has(data.code) && this.turn ? this.turn.messageId : null;
    this.els.transcript.append(this.errorNote(data, retryId));
    if (data.code === 'approval_timeout') this.clearApprovals();
    // These end the turn without a turn_complete.
    if (data.code === 'interrupted' || data.code === 'turn_failed') this.finishTurn();
  }

  onCompacted(data) {
    // The summary itself shows, after the messages it replaced, on the next load.
    this.note(`Context compacted: ${fmt(data.tokens_before)} → ${fmt(data.tokens_after)} ` +
      `tokens; ${fmt(data.turns_removed)} earlier turn(s) summarised.`, 'compaction');
    this.loadContext();
  }

  finishTurn() {
    this.endText();
    this.turn = null;
    this.setRunning(false);
    this.loadContext();
  }

  // -- approvals ------------------------------------------------------------------------
  askApproval(calls) {
    if (!calls.length) return;
    if (!this.approvals) this.approvals = { ids: new Set(), verdicts: {} };
    for (const call of calls) {
      this.approvals.ids.add(call.id);
      const card = this.cards.get(call.id);
      const choose = (verdict) => () => this.decide(call.id, verdict);
      card.approval.replaceChildren(
        h('span', { class: 'approval-question', text: `Run ${call.name}?` }),
        h('button', { type: 'button', class: 'primary', onclick: choose('allow') }, 'Allow'),
        h('button', { type: 'button', class: 'danger', onclick: choose('deny') }, 'Deny'),
        h('button', { type: 'button', onclick: choose('allow_chat'),
          title: `Allow ${call.name} without asking again in this chat` },
        'Allow for this chat'));
      card.approval.hidden = false;
    }
  }

  decide(id, verdict) {
    const approvals = this.approvals;
    if (!approvals || !approvals.ids.has(id)) return;
    approvals.verdicts[id] = verdict;
    const card = this.cards.get(id);
    for (const button of card.approval.querySelectorAll('button')) button.disabled = true;
    card.setBadge('asking', verdict === 'deny' ? 'denying…' : 'allowing…');
    const open = [...approvals.ids].filter((callId) => !(callId in approvals.verdicts));
    if (open.length) return;  // every call of the request is answered in one frame
    if (!this.sendFrame({ type: 'tool_approval', verdicts: approvals.verdicts })) {
      say(this.els.chatError, 'Not connected to the gateway; answer again once it reconnects.');
      for (const callId of approvals.ids) {
        delete approvals.verdicts[callId];
        const other = this.cards.get(callId);
        other.setBadge('asking', 'waiting for approval');
        for (const button of other.approval.querySelectorAll('button')) button.disabled = false;
      }
      return;
    }
    for (const callId of approvals.ids) this.cards.get(callId).approval.hidden = true;
    this.approvals = null;
  }

  dropApproval(id) {
    const card = this.cards.get(id);
    if (card) card.approval.hidden = true;
    if (this.approvals) {
      this.approvals.ids.delete(id);
      delete this.approvals.verdicts[id];
      if (!this.approvals.ids.size) this.approvals = null;
    }
  }

  clearApprovals() {
    if (!this.approvals) return;
    for (const id of this.approvals.ids) {
      const card = this.cards.get(id);
      if (card) card.approval.hidden = true;
    }
    this.approvals = null;
  }

  // -- actions from the page ------------------------------------------------------------
  send(text) {
    const frame = { type: 'user_message', content: text, stream: true };
    const attachments = this.app.files ? this.app.files.takeAttachments() : [];  // files.js
    if (attachments.length) frame.attachments = attachments;
    if (!this.sendFrame(frame)) return false;
    const el = this.userBubble(text, null);
    el.classList.add('queued', 'sending');
    el.querySelector('.meta').textContent = 'sending…';
    this.els.queued.append(el);
    this.sending.push({ text, el, attached: attachments.length > 0 });
    this.scrollToEnd();
    return true;
  }

  async cancel() {
    if (this.sendFrame({ type: 'cancel' })) return;
    try {
      await this.api('POST', `/api/chats/${this.chatId}/cancel`);
    } catch (err) {
      say(this.els.chatError, err.detail);
    }
  }

  async compact() {
    const { compactBtn, chatError, chatInfo } = this.els;
    compactBtn.disabled = true;
    say(chatError, '');
    say(chatInfo, 'Compacting…');
    try {
      const result = await this.api('POST', `/api/chats/${this.chatId}/compact`);
      if (this.closed) return;
      say(chatInfo, `Compacted: ${fmt(result.tokens_before)} → ${fmt(result.tokens_after)} ` +
        `tokens; ${fmt(result.turns_removed)} earlier turn(s) summarised.`);
    } catch (err) {
      if (this.closed) return;
      say(chatInfo, '');
      say(chatError, err.detail);
    } finally {
      compactBtn.disabled = false;
      this.loadContext();
    }
  }

  async loadContext() {
    const { meter, meterText } = this.els;
    try {
      const context = await this.api('GET', `/api/chats/${this.chatId}/context`);
      if (this.closed) return;
      const size = context.context_window || 0;
      const used = context.current_tokens || 0;
      const percent = Math.max(0, Math.min(100, context.percent_used ??
        (size ? (100 * used) / size : 0)));
      const mark = 100 * (context.compaction_threshold ?? 0.75);
      meter.style.setProperty('--fill', `${percent}%`);
      meter.style.setProperty('--mark', `${mark}%`);
      meter.classList.toggle('over', percent >= mark);
      meter.setAttribute('aria-valuenow', percent.toFixed(1));
      meter.setAttribute('aria-valuetext', `${percent.toFixed(1)}% of the context window`);
      meter.querySelector('.meter-mark').title = `${mark}%: compaction starts here`;
      meterText.textContent = `${fmt(used)} / ${fmt(size)} tokens ` +
        `(${percent < 10 ? percent.toFixed(1) : percent.toFixed(0)}%)`;
      meterText.title = `Compaction starts at ${mark}% of the window (the red mark).`;
    } catch (err) {
      if (!this.closed) meterText.textContent = `context unknown: ${err.message}`;
    }
  }

  async loadProfiles() {
    const select = this.els.profileSelect;
    try {
      const listing = await this.api('GET', '/api/profiles');
      if (this.closed) return;
      const names = Object.keys(listing.profiles || {});
      select.replaceChildren(...names.map((name) => h('option', { value: name,
        text: `${name} · ${listing.profiles[name].model}` +
          `${name === listing.default ? ' (default)' : ''}` })));
      select.disabled = !names.length;
      if (!names.length) {
        select.append(h('option', { value: '', text: 'no profile yet' }));
      }
      this.profile = this.detail.profile || listing.default || names[0] || '';
      select.value = this.profile;
    } catch (err) {
      say(this.els.chatError, err.detail);
    }
  }

  async switchProfile(name) {
    const select = this.els.profileSelect;
    say(this.els.chatError, '');
    try {
      const result = await this.api('PUT', `/api/chats/${this.chatId}/profile`, { name });
      if (this.closed) return;
      this.profile = result.profile_name;
      this.detail.profile = result.profile_name;
      say(this.els.chatInfo, `This chat now uses the profile ${result.profile_name}.`);
      this.loadContext();
    } catch (err) {
      if (this.closed) return;
      select.value = this.profile;
      say(this.els.chatError, err.detail);
    }
  }

  /** "Notify me when this turn ends": the caller's destinations, and the chat's choice. */
  async loadNotify() {
    const select = this.els.notifySelect;
    select.disabled = true;
    try {
      const [listing, chosen] = await Promise.all([
        this.api('GET', '/api/notifications/destinations'),
        this.api('GET', `/api/chats/${this.chatId}/notify`)]);
      if (this.closed) return;
      const destinations = listing.destinations || [];
      select.replaceChildren(
        h('option', { value: '', text: destinations.length ? 'off'
          : 'off (add a destination on the Jobs page)' }),
        ...destinations.map((d) => h('option', { value: String(d.id),
          text: `${d.name} · ${d.kind}${d.enabled ? '' : ' (disabled)'}` })));
      this.notify = chosen.destination === null ? '' : String(chosen.destination);
      select.value = this.notify;
      select.disabled = !destinations.length && !this.notify;
    } catch (err) {
      if (!this.closed) say(this.els.chatError, err.detail);
    }
  }

  async switchNotify(value) {
    const select = this.els.notifySelect;
    say(this.els.chatError, '');
    try {
      const result = await this.api('PUT', `/api/chats/${this.chatId}/notify`,
        { destination: value === '' ? null : Number(value) });
      if (this.closed) return;
      this.notify = result.destination === null ? '' : String(result.destination);
      say(this.els.chatInfo, result.name
        ? `When a turn of this chat ends, its answer goes to ${result.name}.`
        : 'Turns of this chat no longer send a notification.');
    } catch (err) {
      if (this.closed) return;
      select.value = this.notify;
      say(this.els.chatError, err.detail);
    }
  }

  // -- page state -----------------------------------------------------------------------
  setRunning(running) {
    this.running = running;
    this.els.cancelBtn.hidden = !running;
    this.els.transcript.setAttribute('aria-busy', running ? 'true' : 'false');
  }

  setStatus(text, kind = '') {
    const el = this.els.connStatus;
    el.textContent = text;
    el.className = `conn ${kind}`.trim();
  }

  nearBottom() {
    const scroller = this.els.scroller;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  scrollToEnd() {
    const scroller = this.els.scroller;
    scroller.scrollTop = scroller.scrollHeight;
  }
}
