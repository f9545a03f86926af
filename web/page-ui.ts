/** The demo page's elements and the small helpers that write to them. */

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

export const ui = {
  status: $('status'),
  session: $('session'),
  who: $('who'),
  token: $('token'),
  tokenLeft: $('token-left'),
  refreshes: $('refreshes'),
  refreshNow: $<HTMLButtonElement>('refresh-now'),
  retryNow: $<HTMLButtonElement>('retry-now'),
  logout: $<HTMLButtonElement>('logout'),
  authView: $('auth-view'),
  authForm: $<HTMLFormElement>('auth-form'),
  username: $<HTMLInputElement>('username'),
  password: $<HTMLInputElement>('password'),
  register: $<HTMLButtonElement>('register'),
  authError: $('auth-error'),
  chatView: $('chat-view'),
  joinForm: $<HTMLFormElement>('join-form'),
  roomName: $<HTMLInputElement>('room-name'),
  dmForm: $<HTMLFormElement>('dm-form'),
  dmName: $<HTMLInputElement>('dm-name'),
  roomList: $('room-list'),
  roomTitle: $('room-title'),
  members: $('members'),
  leave: $<HTMLButtonElement>('leave'),
  messages: $('messages'),
  composer: $<HTMLFormElement>('composer'),
  text: $<HTMLInputElement>('text'),
  notice: $('notice'),
  log: $('log'),
};

let noticeTimer: ReturnType<typeof setTimeout> | undefined;

export const clock = (ts: number) =>
  new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
export const clockS = (ts: number) =>
  new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function clearNotice(): void {
  clearTimeout(noticeTimer);
  ui.notice.hidden = true;
}

export function notice(text: string, kind: 'error' | 'info' = 'error'): void {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    ui.notice.hidden = true;
  }, 8000);
}

export function activity(text: string): void {
  const item = el('li', undefined, `${clockS(Date.now())}  ${text}`);
  ui.log.prepend(item);
  while (ui.log.children.length > 100) ui.log.lastElementChild?.remove();
}
