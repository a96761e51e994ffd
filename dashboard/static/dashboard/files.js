// The files panel of a chat: the user's workspace (docs/files.md). Browse folders,
// download, upload by button or drag and drop (in parts, as the API asks for large
// files), delete with confirmation, preview text and images, attach files to the next
// message. Files that a turn's tools changed (agent.files_changed) are marked.
import { h, say } from './util.js';

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;
const PREVIEW_BYTES = 64 * 1024;  // a text preview is the file's first bytes (a Range)

export class FilesPanel {
  constructor(app, chatId) {
    this.app = app;
    this.chatId = chatId;
    this.folder = '.';
    this.entries = new Map();     // name -> entry of the folder shown
    this.marked = new Set();      // paths a tool changed in this chat
    this.attachments = [];        // workspace paths sent with the next message
    const $ = (id) => document.getElementById(id);
    this.els = { panel: $('files-panel'), list: $('files-list'), where: $('files-where'),
                 input: $('files-input'), error: $('files-error'), preview: $('files-preview'),
                 chips: $('attach-chips'), drop: $('chat-view') };
    this.onDrop = (event) => this.drop(event);
    this.onDrag = (event) => { event.preventDefault(); this.els.panel.classList.add('dragging'); };
    this.onPick = () => this.uploadAll([...this.els.input.files], true);
    this.els.drop.addEventListener('dragover', this.onDrag);
    this.els.drop.addEventListener('drop', this.onDrop);
    this.els.input.addEventListener('change', this.onPick);
    this.renderChips();
    this.refresh();
  }

  close() {
    this.els.drop.removeEventListener('dragover', this.onDrag);
    this.els.drop.removeEventListener('drop', this.onDrop);
    this.els.input.removeEventListener('change', this.onPick);
    this.attachments = [];
    this.renderChips();
  }

  path(name) {
    return this.folder === '.' ? name : `${this.folder}/${name}`;
  }

  async refresh() {
    let body;
    try {
      body = await this.app.api('GET', `/api/files?path=${encodeURIComponent(this.folder)}`);
    } catch (err) {
      say(this.els.error, err.detail || err.message);
      return;
    }
    say(this.els.error, '');
    this.entries = new Map(body.entries.map((e) => [e.name, e]));
    this.render();
  }

  render() {
    this.els.where.textContent = this.folder === '.' ? 'workspace' : this.folder;
    const rows = [];
    if (this.folder !== '.') rows.push(h('li', {}, this.button('↑ ..', () => this.open('..'))));
    for (const entry of this.entries.values()) rows.push(this.row(entry));
    this.els.list.replaceChildren(...rows);
  }

  row(entry) {
    const path = this.path(entry.name);
    const li = h('li', { class: 'file', dataset: { path, type: entry.type } });
    if (this.marked.has(path)) {
      li.classList.add('agent');
      li.append(h('span', { class: 'badge', title: 'changed by the agent' }, 'agent'));
    }
    if (entry.type === 'dir') {
      li.append(this.button(`${entry.name}/`, () => this.open(entry.name), 'name'));
    } else {
      li.append(this.button(entry.name, () => this.preview(path), 'name'),
        h('span', { class: 'size' }, `${entry.size.toLocaleString('en-US')} B`),
        this.button('Download', () => this.download(path), 'download'),
        this.button('Attach', () => this.attach(path), 'attach'));
    }
    li.append(this.button('Delete', () => this.remove(path), 'danger delete'));
    return li;
  }

  button(text, onClick, className = '') {
    const b = h('button', { type: 'button', class: `ghost ${className}` }, text);
    b.addEventListener('click', onClick);
    return b;
  }

  open(name) {
    if (name === '..') {
      const parts = this.folder.split('/');
      parts.pop();
      this.folder = parts.length ? parts.join('/') : '.';
    } else {
      this.folder = this.path(name);
    }
    this.refresh();
  }

  async fetchFile(path, headers = {}) {
    const response = await fetch(`/api/files/content?path=${encodeURIComponent(path)}`, {
      headers: { Authorization: `Bearer ${this.app.token()}`, ...headers } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.message || `HTTP ${response.status}`);
    }
    return response.blob();
  }

  async download(path) {
    try {
      const url = URL.createObjectURL(await this.fetchFile(path));
      const link = h('a', { href: url, download: path.split('/').pop() });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      say(this.els.error, err.message);
    }
  }

  async preview(path) {
    try {
      if (IMAGE.test(path)) {
        const blob = await this.fetchFile(path);
        const url = await new Promise((resolve) => {  // the page's CSP allows data: images
          const reader = new FileReader();
          reader.onload = () => resolve(reader.result);
          reader.readAsDataURL(blob);
        });
        this.els.preview.replaceChildren(h('img', { src: url, alt: path }));
      } else {
        const blob = await this.fetchFile(path, { Range: `bytes=0-${PREVIEW_BYTES - 1}` });
        this.els.preview.replaceChildren(h('pre', {}, await blob.text()));
      }
      this.els.preview.hidden = false;
    } catch (err) {
      say(this.els.error, err.message);
    }
  }

  async remove(path) {
    if (!window.confirm(`Delete ${path}? This cannot be undone.`)) return;
    try {
      await this.app.api('DELETE', `/api/files/content?path=${encodeURIComponent(path)}`);
    } catch (err) {
      say(this.els.error, err.detail || err.message);
    }
    this.refresh();
  }

  drop(event) {
    event.preventDefault();
    this.els.panel.classList.remove('dragging');
    this.uploadAll([...(event.dataTransfer?.files || [])], true);
  }

  // Dropped or picked files go to uploads/<chat>/ and are attached to the next message.
  async uploadAll(files, attach) {
    for (const file of files) {
      try {
        const path = await this.upload(file, `uploads/${this.chatId}/${file.name}`);
        if (attach) this.attach(path);
      } catch (err) {
        say(this.els.error, err.message);
      }
    }
    this.els.input.value = '';
    this.refresh();
  }

  async upload(file, path) {
    const limits = (await this.app.api('GET', '/api/files')).quota;
    const part = limits.max_part_bytes;
    let offset = 0;
    let upload = null;
    for (;;) {
      const params = new URLSearchParams({ path, total: file.size, offset });
      if (upload) params.set('upload', upload);
      const response = await fetch(`/api/files/content?${params}`, {
        method: 'PUT', body: file.slice(offset, offset + part),
        headers: { Authorization: `Bearer ${this.app.token()}` } });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
      if (body.path) return body.path;
      ({ upload, received: offset } = body);
    }
  }

  attach(path) {
    if (!this.attachments.includes(path)) this.attachments.push(path);
    this.renderChips();
  }

  renderChips() {
    const chips = this.attachments.map((path) => {
      const chip = h('span', { class: 'chip' }, path.split('/').pop());
      chip.append(this.button('×', () => {
        this.attachments = this.attachments.filter((p) => p !== path);
        this.renderChips();
      }, 'unattach'));
      return chip;
    });
    this.els.chips.replaceChildren(...chips);
    this.els.chips.hidden = !chips.length;
  }

  // For ChatView.send: the attachments of the message being sent, then none.
  takeAttachments() {
    const taken = this.attachments;
    this.attachments = [];
    this.renderChips();
    return taken;
  }

  // agent.files_changed: mark the named paths; after bash (complete false) mark what is
  // new or changed in the folder shown.
  async changed(data) {
    const before = this.entries;
    for (const path of data.paths || []) this.marked.add(path);
    await this.refresh();
    if (data.complete) return;
    for (const entry of this.entries.values()) {
      const old = before.get(entry.name);
      if (!old || old.modified !== entry.modified || old.size !== entry.size) {
        this.marked.add(this.path(entry.name));
      }
    }
    this.render();
  }
}
