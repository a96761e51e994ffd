// The dashboard page: sign-in, the chat list, routing (#/, #/chats/<id>, #/settings,
// #/tokens).
//
// The bearer token lives in sessionStorage only: this tab, until it closes. A password
// sign-in (Django's session) gets a token of its own from POST /dashboard/token, which
// sign-out revokes; a pasted token is only forgotten.

import { h, say, when, makeApi, csrfToken } from './util.js';
import { ChatView } from './chat.js';
import { FilesPanel } from './files.js';
import { renderSettings } from './settings.js';
import { renderTokens } from './tokens.js';
import { renderUsers } from './users.js';
import { renderUsage } from './usage.js';
import { renderAudit } from './audit.js';
import { renderJobs } from './jobs.js';

const TOKEN_KEY = 'gateway.token';
const MINTED_KEY = 'gateway.tokenId';  // set when this page minted the token itself
const PAGE_SIZE = 20;
const SEARCH_PAUSE_MS = 250;
const CHAT_ROUTE = /^\/chats\/([0-9a-fA-F-]{36})$/;
// The pages a module renders (team pages, jobs): route -> [view id, render, admins only].
const TEAM_PAGES = {
  '/jobs': ['jobs-view', renderJobs, false],
  '/usage': ['usage-view', renderUsage, false],
  '/users': ['users-view', renderUsers, true],
  '/audit': ['audit-view', renderAudit, true],
};

const config = JSON.parse(document.getElementById('gw-config').textContent);
const byId = (id) => document.getElementById(id);

class App {
  constructor() {
    this.els = {
      signin: byId('signin'), signinMessage: byId('signin-message'),
      tokenForm: byId('token-form'), tokenInput: byId('token-input'),
      tokenError: byId('token-error'),
      shell: byId('shell'), whoami: byId('whoami'), signout: byId('signout'),
      settingsLink: byId('settings-link'), navToggle: byId('nav-toggle'),
      sidebar: byId('sidebar'), chatList: byId('chat-list'), moreChats: byId('more-chats'),
      chatSearch: byId('chat-search'),
      newChat: byId('new-chat'), listError: byId('list-error'), listInfo: byId('list-info'),
      selectChats: byId('select-chats'), bulkBar: byId('bulk-bar'),
      bulkCount: byId('bulk-count'), bulkAll: byId('bulk-all'), bulkDelete: byId('bulk-delete'),
      homeView: byId('home-view'), chatView: byId('chat-view'),
      settingsView: byId('settings-view'), settingsBody: byId('settings-body'),
      tokensView: byId('tokens-view'), tokensBody: byId('tokens-body'),
      chatTitle: byId('chat-title'), renameBtn: byId('rename-btn'),
      renameForm: byId('rename-form'), renameInput: byId('rename-input'),
      renameCancel: byId('rename-cancel'), deleteBtn: byId('delete-btn'),
      confirmDelete: byId('confirm-delete'), profileSelect: byId('profile-select'),
      notifySelect: byId('notify-select'),
      meter: byId('meter'), meterText: byId('meter-text'), compactBtn: byId('compact-btn'),
      connStatus: byId('conn-status'), chatError: byId('chat-error'),
      chatInfo: byId('chat-info'), scroller: byId('scroller'),
      transcript: byId('transcript'), queued: byId('queued'), composer: byId('composer'),
      input: byId('message-input'), cancelBtn: byId('cancel-btn'),
    };
    this.api = makeApi(() => this.token(), () => this.authLost());
    this.me = null;
    this.chat = null;
    this.nextCursor = null;
    this.reminted = false;
    this.selecting = false;  // the chat list shows checkboxes for a bulk delete
    this.selected = new Set();
  }

  token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  // -- sign-in --------------------------------------------------------------------------
  async start() {
    this.bind();
    if (!this.token() && config.session_user) await this.mint();
    if (!this.token()) {
      this.showSignIn('');
      return;
    }
    await this.enter();
  }

  /** A token for the signed-in Django session. */
  async mint() {
    try {
      const response = await fetch('/dashboard/token', { method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRFToken': csrfToken(), Accept: 'application/json' } });
      if (!response.ok) return false;
      const body = await response.json();
      sessionStorage.setItem(TOKEN_KEY, body.token);
      sessionStorage.setItem(MINTED_KEY, body.id);
      return true;
    } catch {
      return false;
    }
  }

  async enter() {
    try {
      this.me = await this.api('GET', '/dashboard/me');
    } catch (err) {
      if (err.status !== 401) this.showSignIn(err.detail);
      return;
    }
    const { els } = this;
    els.signin.hidden = true;
    els.shell.hidden = false;
    els.whoami.textContent = this.me.username + (this.me.is_staff ? ' (admin)' : '');
    els.settingsLink.hidden = !this.me.is_staff;
    byId('users-link').hidden = byId('audit-link').hidden = !this.me.is_staff;
    await this.loadChats(true);
    this.route();
  }

  showSignIn(message) {
    this.me = null;
    this.els.shell.hidden = true;
    this.els.signin.hidden = false;
    say(this.els.signinMessage, message);
    this.els.tokenInput.focus();
  }

  async signInWithToken(event) {
    event.preventDefault();
    const token = this.els.tokenInput.value.trim();
    if (!token) return;
    say(this.els.tokenError, '');
    try {
      await makeApi(() => token)('GET', '/api/chats?limit=1');
    } catch (err) {
      say(this.els.tokenError, err.status === 401
        ? 'This token is not valid: it is wrong, revoked or expired.' : err.detail);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.removeItem(MINTED_KEY);
    this.els.tokenInput.value = '';
    this.lost = false;
    await this.enter();
  }

  /** The token stopped working (expired, revoked): get a new one or sign in again. */
  async authLost() {
    if (this.lost) return;
    this.lost = true;
    this.closeChat();
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(MINTED_KEY);
    if (config.session_user && !this.reminted) {
      this.reminted = true;
      if (await this.mint()) {
        this.lost = false;
        await this.enter();
        return;
      }
    }
    this.showSignIn('Your token is no longer valid (expired or revoked). Sign in again.');
  }

  async signOut() {
    const minted = sessionStorage.getItem(MINTED_KEY);
    this.closeChat();
    if (minted) {
      try {
        await this.api('DELETE', `/api/tokens/${encodeURIComponent(minted)}`);
      } catch {
        // Expired or revoked already: nothing left to revoke.
      }
    }
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(MINTED_KEY);
    if (config.session_user) {
      try {
        await fetch('/logout/', { method: 'POST', credentials: 'same-origin',
          headers: { 'X-CSRFToken': csrfToken() } });
      } catch {
        // The page reloads either way; a failed logout leaves the session to expire.
      }
    }
    history.replaceState(null, '', '/');
    location.reload();
  }

  // -- routing --------------------------------------------------------------------------
  route() {
    if (!this.me) return;
    const path = location.hash.replace(/^#/, '') || '/';
    this.setNav(false);
    const chat = CHAT_ROUTE.exec(path);
    if (chat) {
      this.openChat(chat[1].toLowerCase());
    } else if (TEAM_PAGES[path] && (this.me.is_staff || !TEAM_PAGES[path][2])) {
      const [view, render] = TEAM_PAGES[path];
      this.closeChat();
      this.show(view);
      render(this, byId(view));
    } else if (path === '/settings') {
      this.closeChat();
      this.show('settings');
      renderSettings(this, this.els.settingsBody);
    } else if (path === '/tokens') {
      this.closeChat();
      this.show('tokens');
      renderTokens(this, this.els.tokensBody);
    } else {
      this.closeChat();
      this.show('home');
    }
    this.markActive();
  }

  show(view) {
    this.els.homeView.hidden = view !== 'home';
    this.els.chatView.hidden = view !== 'chat';
    this.els.settingsView.hidden = view !== 'settings';
    this.els.tokensView.hidden = view !== 'tokens';
    for (const [id] of Object.values(TEAM_PAGES)) byId(id).hidden = view !== id;
  }

  openChat(chatId) {
    if (this.chat && this.chat.chatId === chatId && !this.chat.closed) return;
    this.closeChat();
    this.show('chat');
    this.endRename();
    this.els.chatTitle.textContent = '';
    this.chat = new ChatView(this, chatId);
    this.chat.open();
    this.files = new FilesPanel(this, chatId);
    if (window.matchMedia('(min-width: 761px)').matches) this.els.input.focus();
  }

  closeChat() {
    if (this.files) this.files.close();
    this.files = null;
    if (this.chat) this.chat.close();
    this.chat = null;
  }

  markActive() {
    const current = this.chat ? this.chat.chatId : null;
    for (const link of this.els.chatList.querySelectorAll('a')) {
      if (link.closest('li').dataset.chatId === current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  setNav(open) {
    this.els.sidebar.classList.toggle('open', open);
    this.els.navToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  // -- chat list ------------------------------------------------------------------------
  async loadChats(reset) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!reset && this.nextCursor) params.set('cursor', this.nextCursor);
    const query = this.els.chatSearch.value.trim();
    if (query) params.set('q', query);
    try {
      const page = await this.api('GET', `/api/chats?${params}`);
      if (reset) {
        this.els.chatList.replaceChildren();
        // Only what the list shows may be deleted: a new search drops the rest.
        const shown = new Set(page.chats.map((chat) => chat.chat_id));
        for (const id of [...this.selected]) if (!shown.has(id)) this.selected.delete(id);
      }
      for (const chat of page.chats) this.els.chatList.append(this.chatItem(chat));
      this.updateBulk();
      this.nextCursor = page.next;
      this.els.moreChats.hidden = !page.next;
      say(this.els.listError, '');
      this.markActive();
    } catch (err) {
      say(this.els.listError, err.detail);
    }
  }

  chatItem(chat) {
    const title = chat.title || 'New chat';
    const pick = h('input', { type: 'checkbox', class: 'pick',
      'aria-label': `Select “${title}”`, checked: this.selected.has(chat.chat_id) });
    pick.addEventListener('change', () => this.pick(chat.chat_id, pick.checked));
    return h('li', { dataset: { chatId: chat.chat_id } }, pick,
      h('a', { href: `#/chats/${chat.chat_id}` },
        h('span', { class: 'chat-name', text: title }),
        h('time', { datetime: chat.updated_at, text: when(chat.updated_at) })));
  }

  // -- selecting chats for a bulk delete ------------------------------------------------
  setSelecting(on) {
    this.selecting = on;
    if (!on) {
      this.selected.clear();
      for (const box of this.els.chatList.querySelectorAll('.pick')) box.checked = false;
    }
    this.els.sidebar.classList.toggle('selecting', on);
    this.els.selectChats.setAttribute('aria-pressed', on ? 'true' : 'false');
    this.els.selectChats.textContent = on ? 'Done' : 'Select';
    this.els.bulkBar.hidden = !on;
    say(this.els.listInfo, '');
    this.updateBulk();
  }

  pick(chatId, on) {
    if (on) this.selected.add(chatId);
    else this.selected.delete(chatId);
    this.updateBulk();
  }

  pickAllShown() {
    for (const box of this.els.chatList.querySelectorAll('.pick')) {
      box.checked = true;
      this.selected.add(box.closest('li').dataset.chatId);
    }
    this.updateBulk();
  }

  updateBulk() {
    const count = this.selected.size;
    this.els.bulkCount.textContent = count ? `${count} selected` : 'None selected';
    this.els.bulkDelete.disabled = !count;
  }

  /** Delete the selected chats after one confirmation (POST /api/chats/bulk-delete). */
  async deleteSelected() {
    const ids = [...this.selected];
    if (!ids.length) return;
    const what = ids.length === 1 ? 'this chat' : `these ${ids.length} chats`;
    if (!await this.confirm(`Delete ${what}? Their messages are removed for good, and a ` +
      'job\'s chat takes its job with it.')) return;
    say(this.els.listError, '');
    try {
      const result = await this.api('POST', '/api/chats/bulk-delete', { chat_ids: ids });
      for (const id of [...result.deleted, ...result.not_found]) {
        this.selected.delete(id);
        this.listItem(id)?.remove();
      }
      const gone = result.deleted.length;
      say(this.els.listInfo, `Deleted ${gone} chat${gone === 1 ? '' : 's'}.` +
        (result.not_found.length ? ` ${result.not_found.length} no longer existed.` : ''));
      this.updateBulk();
      const open = this.chat && this.chat.chatId;
      if (open && [...result.deleted, ...result.not_found].includes(open)) location.hash = '#/';
    } catch (err) {
      say(this.els.listError, err.detail);
    }
  }

  /** Ask in the page's confirmation dialog; true when the answer is Delete. */
  async confirm(text) {
    const dialog = this.els.confirmDelete;
    byId('confirm-delete-text').textContent = text;
    dialog.returnValue = '';
    dialog.showModal();
    await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
    return dialog.returnValue === 'delete';
  }

  listItem(chatId) {
    return this.els.chatList.querySelector(`li[data-chat-id="${CSS.escape(chatId)}"]`);
  }

  async newChat() {
    try {
      const chat = await this.api('POST', '/api/chats', {});
      this.els.chatList.prepend(this.chatItem(chat));
      location.hash = `#/chats/${chat.chat_id}`;
    } catch (err) {
      say(this.els.listError, err.detail);
    }
  }

  // -- the open chat's header -----------------------------------------------------------
  showChatHead(detail) {
    this.els.chatTitle.textContent = detail.title || 'New chat';
    document.title = `${detail.title || 'New chat'} · Agent gateway`;
  }

  /** A title the server chose (from the first message, or the model's): no PATCH, so
   * the server may still replace it with the model's title. */
  showTitle(chat, title) {
    if (!chat.detail) return;
    chat.detail.title = title;
    if (this.chat === chat) this.showChatHead(chat.detail);
    const item = this.listItem(chat.chatId);
    if (item) item.querySelector('.chat-name').textContent = title || 'New chat';
  }

  startRename() {
    if (!this.chat || !this.chat.detail) return;
    const { els } = this;
    els.renameInput.value = this.chat.detail.title || '';
    els.renameForm.hidden = false;
    els.chatTitle.hidden = true;
    els.renameBtn.hidden = true;
    els.renameInput.focus();
    els.renameInput.select();
  }

  endRename() {
    this.els.renameForm.hidden = true;
    this.els.chatTitle.hidden = false;
    this.els.renameBtn.hidden = false;
  }

  async rename(title) {
    const chat = this.chat;
    if (!chat || !chat.detail) return false;
    try {
      const updated = await this.api('PATCH', `/api/chats/${chat.chatId}`, { title });
      chat.detail.title = updated.title;
      if (this.chat === chat) this.showChatHead(updated);
      const item = this.listItem(chat.chatId);
      if (item) item.querySelector('.chat-name').textContent = updated.title || 'New chat';
      return true;
    } catch (err) {
      say(this.els.chatError, err.detail);
      return false;
    }
  }

  async deleteChat() {
    const chat = this.chat;
    if (!chat) return;
    if (!await this.confirm(`Delete “${(chat.detail && chat.detail.title) || 'New chat'}”? ` +
      'Its messages are removed for good.')) return;
    try {
      await this.api('DELETE', `/api/chats/${chat.chatId}`);
      this.listItem(chat.chatId)?.remove();
      location.hash = '#/';
    } catch (err) {
      say(this.els.chatError, err.detail);
    }
  }

  // -- composer -------------------------------------------------------------------------
  submitMessage() {
    const { input } = this.els;
    const text = input.value;
    if (!text.trim() || !this.chat) return;
    if (!this.chat.send(text)) {
      say(this.els.chatError,
        'Not connected to the gateway; your message is still in the box. Reconnecting…');
      return;
    }
    say(this.els.chatError, '');
    input.value = '';
    this.fitInput();
    const detail = this.chat.detail;
    if (detail && !detail.title) {
      // The server titles an untitled chat from its first message: show the same now.
      const first = text.split('\n').find((line) => line.trim()) || '';
      this.showTitle(this.chat, first.trim().split(/\s+/).join(' ').slice(0, 60));
    }
  }

  fitInput() {
    const { input } = this.els;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight + 2, 240)}px`;
  }

  // -- wiring ---------------------------------------------------------------------------
  bind() {
    const { els } = this;
    els.tokenForm.addEventListener('submit', (event) => this.signInWithToken(event));
    els.signout.addEventListener('click', () => this.signOut());
    els.newChat.addEventListener('click', () => this.newChat());
    els.moreChats.addEventListener('click', () => this.loadChats(false));
    // Search as one types, once the typing pauses.
    let searchTimer = null;
    els.chatSearch.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => this.loadChats(true), SEARCH_PAUSE_MS);
    });
    els.chatList.addEventListener('click', (event) => {
      const link = event.target.closest('a');
      if (link && this.selecting) {  // while selecting, a click on a chat picks it
        event.preventDefault();
        const box = link.closest('li').querySelector('.pick');
        box.checked = !box.checked;
        this.pick(link.closest('li').dataset.chatId, box.checked);
      } else if (link) {
        this.setNav(false);  // also for the chat already open
      }
    });
    els.selectChats.addEventListener('click', () => this.setSelecting(!this.selecting));
    els.bulkAll.addEventListener('click', () => this.pickAllShown());
    els.bulkDelete.addEventListener('click', () => this.deleteSelected());
    els.navToggle.addEventListener('click', () =>
      this.setNav(!els.sidebar.classList.contains('open')));
    els.renameBtn.addEventListener('click', () => this.startRename());
    els.renameCancel.addEventListener('click', () => this.endRename());
    els.renameForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (await this.rename(els.renameInput.value.trim())) this.endRename();
    });
    els.renameInput.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.endRename();
    });
    els.deleteBtn.addEventListener('click', () => this.deleteChat());
    els.compactBtn.addEventListener('click', () => this.chat && this.chat.compact());
    els.profileSelect.addEventListener('change', () =>
      this.chat && this.chat.switchProfile(els.profileSelect.value));
    els.notifySelect.addEventListener('change', () =>
      this.chat && this.chat.switchNotify(els.notifySelect.value));
    els.cancelBtn.addEventListener('click', () => this.chat && this.chat.cancel());
    els.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitMessage();
    });
    els.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing &&
          !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.submitMessage();
      }
    });
    els.input.addEventListener('input', () => this.fitInput());
    window.addEventListener('hashchange', () => this.route());
    window.addEventListener('online', () => this.chat && this.chat.reconnectNow());
  }
}

const app = new App();
// For tests and the curious: the page's state, e.g. gatewayDashboard.chat.lastSeq.
window.gatewayDashboard = app;
app.start();
