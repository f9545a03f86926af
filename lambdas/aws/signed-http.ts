import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

/** AWS credentials as Lambda puts them in the environment (the session token with a role). */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

/**
 * The credentials Lambda gives a function in its environment (the execution role's, with a
 * session token), read once: they last as long as the container. Missing ones fail the cold start.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): AwsCredentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set to sign AWS requests');
  }
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
}

export interface SignedHttpOptions {
  /** Base URL; its path prefixes every request's. */
  readonly endpoint: string;
  /** The SigV4 signing name: `execute-api`, `secretsmanager`. */
  readonly service: string;
  readonly region: string;
  readonly credentials: AwsCredentials;
  /** Sockets kept open to the endpoint (default 64). */
  readonly maxSockets?: number;
  /** A request that has no answer after this long fails with `TimeoutError` (default 5000 ms). */
  readonly timeoutMs?: number;
  /** The largest body kept with `keepBody` (default 256 KB); a longer answer fails. */
  readonly maxBodyBytes?: number;
  /**
   * Send and sign `x-amz-content-sha256`, the body's hash, as the SDK's clients do (default
   * false): SigV4 does not need it outside S3, but a store that checks signatures may.
   */
  readonly signBodyHash?: boolean;
}

export interface SignedRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Under the endpoint's path, already percent-encoded. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  /** The body of a non-2xx answer (cut at 4 KB) or, with `keepBody`, of any answer. */
  readonly body: string;
}

export interface SignedHttp {
  send(request: SignedRequest, options?: { keepBody?: boolean }): Promise<Answer>;
  destroy(): void;
}

/** Error bodies are short JSON; a longer one is cut, never buffered whole. */
const MAX_ERROR_BODY = 4096;
/** A wanted body (a secret's value) is bounded too. */
const MAX_BODY = 256 * 1024;

/**
 * Requests to one AWS endpoint signed with the SDK's own SigV4 signer (and its Sha256), over a
 * keep-alive `node:http(s)` agent: what an SDK client sends, without its per-command middleware,
 * endpoint rules and serde. A socket that the server closed while it idled (a Lambda container
 * thawed after a pause) is noticed only when reused; such a request, failed before any answer,
 * is sent once more on a fresh socket, as the Node.js documentation advises.
 */
export function signedHttp(options: SignedHttpOptions): SignedHttp {
  const url = new URL(options.endpoint);
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') throw new Error(`unsupported endpoint protocol ${url.protocol}`);
  const send = secure ? httpsRequest : httpRequest;
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64, scheduling: 'lifo' as const };
  const agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxBody = options.maxBodyBytes ?? MAX_BODY;
  const signer = sigV4Signer(options);
  const endpoint = endpointOf(url);

  return {
    async send(req, { keepBody = false } = {}) {
      const request: RequestOptions = { ...(await signRequest(signer, endpoint, req)), agent };
      try {
        return await exchange(send, request, req.body, timeoutMs, keepBody ? maxBody : 0);
      } catch (err) {
        if (!(err instanceof StaleSocketError)) throw err;
        return exchange(send, request, req.body, timeoutMs, keepBody ? maxBody : 0);
      }
    },
    destroy: () => agent.destroy(),
  };
}

function sigV4Signer(options: SignedHttpOptions): SignatureV4 {
  return new SignatureV4({
    service: options.service,
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
    // By default no `x-amz-content-sha256` header: S3 wants it, SigV4 elsewhere hashes the body
    // into the canonical request without it, and leaving it out saves a third of the signing CPU.
    applyChecksum: options.signBodyHash ?? false,
  });
}

/** What every request to the endpoint shares, worked out once per client (posting is the hot path). */
interface Endpoint {
  readonly protocol: string;
  readonly hostname: string;
  /** With the port when it is not the scheme's default, as SigV4 signs it. */
  readonly host: string;
  readonly port: number | undefined;
  /** The endpoint's path, without a trailing slash. */
  readonly base: string;
}

function endpointOf(url: URL): Endpoint {
  return {
    protocol: url.protocol,
    hostname: url.hostname,
    host: url.host,
    port: url.port ? Number(url.port) : undefined,
    base: url.pathname.replace(/\/+$/, ''),
  };
}

/** The request's options for `node:http(s)`, under the endpoint's path, with its signed headers. */
async function signRequest(
  signer: SignatureV4,
  endpoint: Endpoint,
  req: SignedRequest,
): Promise<RequestOptions> {
  const { port, hostname } = endpoint;
  const path = `${endpoint.base}${req.path}`;
  const headers: Record<string, string> = { ...req.headers, host: endpoint.host };
  if (req.body) headers['content-length'] = String(req.body.byteLength);
  const signed = await signer.sign({
    method: req.method,
    protocol: endpoint.protocol,
    hostname,
    ...(port === undefined ? {} : { port }),
    path,
    query: {},
    headers,
    ...(req.body ? { body: req.body } : {}),
  });
  return {
    method: req.method,
    hostname,
    ...(port === undefined ? {} : { port }),
    path,
    headers: signed.headers,
  };
}

/** A keep-alive socket found closed by the server before any answer: safe to send again. */
class StaleSocketError extends Error {}

function exchange(
  send: typeof httpRequest,
  options: RequestOptions,
  body: Uint8Array | undefined,
  timeoutMs: number,
  /** With `keepBody`, the longest body kept; 0 keeps only an error's. */
  maxBody: number,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    const req = send(options, (res) => {
      answered = true;
      collectAnswer(res, maxBody, resolve, reject);
    });
    req.setTimeout(timeoutMs, () => {
      const err = new Error(`no answer within ${timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        reject(new StaleSocketError(err.message, { cause: err }));
      } else {
        reject(err);
      }
    });
    req.end(body);
  });
}

/** Reads an answer, keeping at most `maxBody` bytes of its body (with 0, an error's first 4 KB). */
function collectAnswer(
  res: IncomingMessage,
  maxBody: number,
  resolve: (answer: Answer) => void,
  reject: (err: Error) => void,
): void {
  const keepBody = maxBody > 0;
  const status = res.statusCode ?? 0;
  const limit = keepBody ? maxBody : status >= 300 ? MAX_ERROR_BODY : 0;
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    if (size < limit) chunks.push(chunk);
    size += chunk.length;
  });
  res.on('end', () => {
    if (keepBody && size > maxBody) {
      reject(new Error(`the answer is over ${maxBody} bytes`));
      return;
    }
    resolve({
      status,
      headers: res.headers,
      body: Buffer.concat(chunks).subarray(0, limit).toString('utf8'),
    });
  });
  res.on('error', reject);
}
