import type { IncomingMessage, ServerResponse } from 'node:http';
import { isOriginAllowed } from '../lambdas/core/origin.ts';
import { buildWeb, type WebBundle } from '../web/build.ts';

export interface DemoPageOptions {
  /** The WebSocket API's URL as the gateway reports it (`ws://127.0.0.1:3001`). */
  readonly wsUrl: string;
  /** The WebSocket API's origin allowlist, so the page can tell when its own origin is outside it. */
  readonly allowedOrigins: readonly string[];
  /** Builds the page; default `buildWeb()` (esbuild, in memory). */
  readonly build?: () => Promise<WebBundle>;
}

const PAGE_PATHS: Record<string, string> = { '/': '/index.html', '/index.html': '/index.html' };

/**
 * The HTTP gateway's fallback for the demo page: `/` and its scripts and styles, built
 * with esbuild on the first request, and `/config.json` with the URLs the page talks to
 * and whether the page's own origin may open a socket (on AWS a `config.json` beside the
 * hosted page names the deployed APIs instead).
 * Only the built files are served, never a path of the disk.
 */
export function demoPage(
  options: DemoPageOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  let built: Promise<WebBundle> | undefined;
  const bundle = () => {
    built ??= (options.build ?? buildWeb)().catch((err: unknown) => {
      built = undefined; // a fixed source builds on the next request
      throw err;
    });
    return built;
  };
  const wsPort = new URL(options.wsUrl).port;

  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const wsUrl = pageWsUrl(req.headers.host, options.wsUrl, wsPort);
    if (path === '/config.json') {
      // The page's origin is this request's scheme and Host: a browser loads config.json from it.
      const originAllowed = isOriginAllowed(`http://${req.headers.host ?? ''}`, options.allowedOrigins);
      const config = { httpUrl: '', wsUrl, originAllowed };
      send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(config));
      return true;
    }
    const name = PAGE_PATHS[path] ?? path;
    if (!/^\/[\w.-]+\.(js|css|html)$/.test(name)) return false;
    let files: WebBundle;
    try {
      files = await bundle();
    } catch (err) {
      send(
        req,
        res,
        500,
        'text/plain; charset=utf-8',
        `the demo page did not build:\n${(err as Error).message}`,
      );
      return true;
    }
    const asset = files.get(name);
    if (!asset) return false;
    const headers: Record<string, string> = name.endsWith('.html')
      ? { 'content-security-policy': pagePolicy(wsUrl) }
      : {};
    send(req, res, 200, asset.contentType, asset.body, headers);
    return true;
  };
}

/**
 * The socket URL the page is given: the host the page was loaded from, so localhost and
 * 127.0.0.1 (and a LAN address with HOST=0.0.0.0) each reach the gateway under their own name.
 */
function pageWsUrl(hostHeader: string | undefined, gatewayUrl: string, wsPort: string): string {
  const host = hostnameOf(hostHeader) ?? new URL(gatewayUrl).hostname;
  return `ws://${host.includes(':') ? `[${host}]` : host}:${wsPort}`;
}

/** The demo page's content security policy: its own files, and sockets to `wsUrl` alone. */
function pagePolicy(wsUrl: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${wsUrl}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  try {
    const { hostname } = new URL(`http://${hostHeader}`);
    return hostname.replace(/^\[|\]$/g, '') || undefined;
  } catch {
    return undefined;
  }
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Uint8Array,
  extra: Record<string, string> = {},
): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': String(bytes.length),
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}
