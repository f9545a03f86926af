import { createHmac } from 'node:crypto';
import { base64url, type CryptoKey } from 'jose';
import { AppError } from '../../lambdas/core/errors.ts';

/** What a call ended in: 'accepted', or the AppError code it was refused with. */
export async function outcomeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    if (err instanceof AppError) return err.code;
    throw err;
  }
  return 'accepted';
}

export function encodeJson(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/** One part of a compact JWS or JWE: a string as its own text, anything else as JSON. */
export function encodePart(value: unknown): string {
  return typeof value === 'string' ? base64url.encode(value) : encodeJson(value);
}

export function decodeJson(part: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(base64url.decode(part))) as Record<string, unknown>;
}

export function parts(token: string): [string, string, string] {
  const [header = '', payload = '', signature = ''] = token.split('.');
  return [header, payload, signature];
}

/**
 * An Ed25519-signed compact JWS over exactly this header and payload, built by hand so
 * that no library refuses to produce a hostile token. A string payload is used as the
 * JSON text itself (for numbers JSON.stringify cannot write, such as 1e400).
 */
export async function signEd25519(
  key: CryptoKey,
  header: Record<string, unknown>,
  payload: unknown,
): Promise<string> {
  const body = typeof payload === 'string' ? base64url.encode(payload) : encodeJson(payload);
  const input = `${encodeJson(header)}.${body}`;
  const signature = await crypto.subtle.sign('Ed25519', key, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

/** An HMAC-signed compact JWS (HS256/HS384/HS512) with an attacker-chosen secret. */
export function signHmac(
  alg: 'HS256' | 'HS384' | 'HS512',
  secret: Uint8Array | string,
  header: Record<string, unknown>,
  payload: unknown,
): string {
  const input = `${encodeJson({ ...header, alg })}.${encodeJson(payload)}`;
  const signature = createHmac(`sha${alg.slice(2)}`, secret)
    .update(input)
    .digest('base64url');
  return `${input}.${signature}`;
}

export function without<T extends Record<string, unknown>>(value: T, key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...value };
  delete copy[key];
  return copy;
}
