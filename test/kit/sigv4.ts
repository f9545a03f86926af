import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
const hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

type Data = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: Data): string | Uint8Array =>
  typeof d === 'string'
    ? d
    : d instanceof ArrayBuffer
      ? new Uint8Array(d)
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** SHA-256 (keyed: HMAC) over node:crypto, in the shape SignatureV4 wants. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: Data) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: Data): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

/** The AWS SDK's own SigV4 signer, for requests a test signs by hand (and may then tamper with). */
export function sdkSigner(o: {
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  service?: string;
}): SignatureV4 {
  return new SignatureV4({
    credentials: o.credentials,
    region: o.region,
    service: o.service ?? 'execute-api',
    sha256: NodeSha256,
  });
}

/**
 * AWS Signature Version 4 as its documentation specifies it, written out with node:crypto and
 * nothing of the SDK: the signature the request should carry, from what arrived on the wire.
 */
export function expectedSignature(req: IncomingMessage, body: Buffer, secret: string): string {
  const auth = String(req.headers.authorization);
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) throw new Error(`not a SigV4 authorization header: ${auth}`);
  const [, , date, region, service, signedHeaders] = m as unknown as string[];
  const amzDate = String(req.headers['x-amz-date']);
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  // Services other than S3 encode each path segment once more in the canonical request.
  const canonicalUri = path
    .split('/')
    .map((s) =>
      encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
  const names = String(signedHeaders).split(';');
  const canonicalHeaders = names.map((n) => `${n}:${String(req.headers[n]).trim()}\n`).join('');
  const canonicalRequest = [req.method, canonicalUri, '', canonicalHeaders, signedHeaders, hex(body)].join(
    '\n',
  );
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, hex(canonicalRequest)].join('\n');
  let key = hmac(`AWS4${secret}`, String(date));
  for (const part of [String(region), String(service), 'aws4_request']) key = hmac(key, part);
  return hmac(key, stringToSign).toString('hex');
}

export const signatureOf = (req: IncomingMessage) =>
  /Signature=([0-9a-f]{64})/.exec(String(req.headers.authorization))?.[1];

/** A stand-in AWS endpoint on port 0 that records each request and answers with `answer`; closed by `cleanups`. */
export async function standIn(
  cleanups: (() => Promise<void> | void)[],
  answer: (req: IncomingMessage, body: Buffer, res: ServerResponse, socket: Socket) => void,
) {
  const seen: { req: IncomingMessage; body: Buffer }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ req, body });
      answer(req, body, res, req.socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}
