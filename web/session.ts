import { RealtimeError } from './errors.ts';
import { asRealtimeError } from './failure.ts';
import type { HttpApi, TokenPair } from './http.ts';

/** What the session asks of the client around a refresh. */
export interface SessionHooks {
  /** A refreshed pair to adopt (its key, its events); it calls `set` and `scheduleRefresh`. */
  adopt(pair: TokenPair): void;
  /** After adopting a refreshed pair: hand the new token to the open socket. */
  refreshed(): Promise<void>;
  /** The refresh token was refused (spent, revoked, its user blocked): the session is over. */
  refused(): void;
  /** A background refresh failed. */
  failed(err: RealtimeError): void;
}

/**
 * The token session: the pair, when it expires on this machine's clock, whose it is, and
 * its refresh before expiry (one at a time, retried on network trouble).
 */
export class TokenSession {
  #tokens: TokenPair | undefined;
  #expiresAt = 0;
  #username = '';
  #timer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(
    readonly http: HttpApi,
    readonly settings: { readonly autoRefresh: boolean; readonly refreshMarginS: number | undefined },
    readonly hooks: SessionHooks,
  ) {}

  get tokens(): TokenPair | undefined {
    return this.#tokens;
  }

  get accessToken(): string | undefined {
    return this.#tokens?.access_token;
  }

  get expiresAt(): number {
    return this.#expiresAt;
  }

  get username(): string {
    return this.#username;
  }

  /** The roles of the access token (`[]` when logged out). */
  get roles(): string[] {
    const roles = this.#tokens ? claimsOf(this.#tokens.access_token).roles : undefined;
    return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
  }

  /** Keeps a new pair; the caller schedules its refresh once it has taken the rest. */
  set(pair: TokenPair): void {
    this.#tokens = pair;
    this.#expiresAt = Date.now() + pair.expires_in * 1000;
    const username = claimsOf(pair.access_token).username;
    if (typeof username === 'string') this.#username = username;
  }

  /** Forgets the pair and stops refreshing. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#tokens = undefined;
    this.#expiresAt = 0;
    this.#username = '';
  }

  /** Whether a handshake now should refresh first: the token would not outlive it by much. */
  nearExpiry(): boolean {
    return (
      this.#tokens !== undefined && this.#expiresAt - Date.now() < Math.min(this.#marginMs(), 5000) + 1000
    );
  }

  scheduleRefresh(delayMs?: number): void {
    clearTimeout(this.#timer);
    if (!this.settings.autoRefresh || !this.#tokens) return;
    const due = delayMs ?? Math.max(1000, this.#expiresAt - this.#marginMs() - Date.now());
    this.#timer = setTimeout(() => {
      this.refresh().catch((err: unknown) => this.hooks.failed(asRealtimeError(err)));
    }, due);
  }

  /** Concurrent calls share one refresh, since a refresh token presented twice revokes its family. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const tokens = this.#tokens;
    if (!tokens) throw new RealtimeError('not_logged_in', 'log in first');
    let pair: TokenPair;
    try {
      pair = await this.http.refresh(tokens.refresh_token);
    } catch (err) {
      const e = asRealtimeError(err);
      if (e.status === 401 || e.status === 403) {
        // The refresh token is spent, revoked or its user blocked: nothing left to try.
        this.hooks.refused();
      } else if (this.#tokens === tokens) {
        // Network trouble or a 5xx: try again while the token still has time left.
        this.scheduleRefresh(Math.max(1000, Math.min(30_000, (this.#expiresAt - Date.now()) / 2)));
      }
      throw e;
    }
    if (this.#tokens !== tokens) return; // logged out meanwhile
    this.hooks.adopt(pair);
    await this.hooks.refreshed();
  }

  #marginMs(): number {
    const lifetimeS = this.#tokens?.expires_in ?? 0;
    return (this.settings.refreshMarginS ?? Math.min(60, lifetimeS / 5)) * 1000;
  }
}

/** A JWT's claims, unverified: the server verifies tokens, the client only reads its own name. */
export function claimsOf(token: string): Record<string, unknown> {
  try {
    const b64 = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
