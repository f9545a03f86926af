import type { TokenPair } from '../lambdas/core/token-pair.ts';
import { type HttpErrorCode, RealtimeError } from './errors.ts';

/** What login, refresh and token exchange return: the server's own type. */
export type { TokenPair } from '../lambdas/core/token-pair.ts';

export interface Me {
  sub: string;
  username: string;
  roles: string[];
  exp: number;
}

export interface Ticket {
  ticket: string;
  expires_in: number;
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

const HTTP_CODES = new Set<string>([
  'invalid_request',
  'invalid_credentials',
  'invalid_token',
  'token_expired',
  'forbidden',
  'conflict',
  'rate_limited',
  'internal',
]);

/**
 * The HTTP API (`/auth/*`), one function per endpoint. Every failure becomes a
 * `RealtimeError` with the server's `code` (or `network`), `status` and `retryAfterS`.
 */
export class HttpApi {
  constructor(
    readonly baseUrl: string,
    private readonly fetchImpl: FetchLike = (input, init) => fetch(input, init),
  ) {}

  register(username: string, password: string): Promise<{ username: string }> {
    return this.call('POST', '/auth/register', { body: { username, password } });
  }

  login(username: string, password: string): Promise<TokenPair> {
    return this.call('POST', '/auth/login', { body: { username, password } });
  }

  refresh(refreshToken: string): Promise<TokenPair> {
    return this.call('POST', '/auth/refresh', { body: { refresh_token: refreshToken } });
  }

  logout(accessToken: string): Promise<void> {
    return this.call('POST', '/auth/logout', { token: accessToken });
  }

  me(accessToken: string): Promise<Me> {
    return this.call('GET', '/auth/me', { token: accessToken });
  }

  wsTicket(accessToken: string): Promise<Ticket> {
    return this.call('POST', '/auth/ws-ticket', { token: accessToken });
  }

  private async call<T>(
    method: string,
    path: string,
    options: { body?: unknown; token?: string } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.baseUrl.replace(/\/+$/, '')}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
    } catch (err) {
      throw new RealtimeError('network', `could not reach the server: ${(err as Error).message}`);
    }
    const text = await res.text().catch(() => '');
    let body: Record<string, unknown> = {};
    try {
      const parsed = text ? (JSON.parse(text) as unknown) : {};
      if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      // A non-JSON body (a proxy's error page) is reported by status below.
    }
    if (res.ok) return (res.status === 204 ? undefined : body) as T;
    const code: HttpErrorCode =
      typeof body.error === 'string' && HTTP_CODES.has(body.error)
        ? (body.error as HttpErrorCode)
        : res.status === 404
          ? 'not_found'
          : res.status === 429
            ? 'rate_limited'
            : res.status === 403
              ? 'forbidden'
              : res.status === 401
                ? 'invalid_token'
                : 'internal';
    const retryAfter = Number(res.headers.get('retry-after'));
    throw new RealtimeError(
      code,
      typeof body.message === 'string' ? body.message : `${method} ${path} failed with ${res.status}`,
      res.status,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
}
