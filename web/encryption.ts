import { RealtimeError } from './errors.ts';
import { asRealtimeError } from './failure.ts';
import type { FrameCipher } from './jwe.ts';
import { OPEN, type WebSocketLike } from './options.ts';
import { type ClientFrame, parseServerFrame, type ServerFrame } from './protocol.ts';

/**
 * The frames on the socket, encrypted when the session has a `message_key`: outgoing frames
 * as `{"type":"encrypted","jwe","id"}`, incoming ones decrypted. Encryption is asynchronous,
 * so a chain per direction keeps frames in order.
 */
export class Encryption {
  /** Loaded on demand: the JWE code stays out of the page's bundle unless the server encrypts. */
  #cipher: Promise<FrameCipher> | undefined;
  #inbound: Promise<void> = Promise.resolve();
  #outbound: Promise<void> = Promise.resolve();

  /** `onError`: failures nobody awaits (a frame that would not encrypt or decrypt). */
  constructor(readonly onError: (err: RealtimeError) => void) {}

  /** Whether frames are encrypted. */
  get on(): boolean {
    return this.#cipher !== undefined;
  }

  /** The `message_key` of a new token pair; a refreshed pair without one keeps the key in use. */
  useKey(messageKey: string | undefined, refreshed: boolean): void {
    if (messageKey) {
      if (!/^[A-Za-z0-9_-]{43}$/.test(messageKey))
        throw new TypeError('message_key must be 256 bits, base64url');
      this.#cipher = import('./jwe.ts').then(({ FrameCipher }) => new FrameCipher(messageKey));
    } else if (!refreshed) this.#cipher = undefined;
  }

  clear(): void {
    this.#cipher = undefined;
  }

  send(socket: WebSocketLike, frame: ClientFrame): void {
    const cipher = this.#cipher;
    if (!cipher) {
      socket.send(JSON.stringify(frame));
      return;
    }
    this.#outbound = this.#outbound
      .then(async () => {
        const jwe = await (await cipher).encrypt(JSON.stringify(frame));
        if (socket.readyState !== OPEN) return;
        socket.send(
          JSON.stringify({ type: 'encrypted', jwe, ...(frame.id === undefined ? {} : { id: frame.id }) }),
        );
      })
      .catch((err: unknown) => this.onError(asRealtimeError(err)));
  }

  /** Parses (and decrypts) what the socket received and hands each frame to `handle`, in order. */
  receive(data: unknown, handle: (frame: ServerFrame) => void): void {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data as Uint8Array);
    const frame = parseServerFrame(text);
    if (!frame) return;
    if (frame.type !== 'encrypted' && !this.#cipher) {
      handle(frame);
      return;
    }
    const cipher = this.#cipher;
    this.#inbound = this.#inbound.then(async () => {
      if (frame.type !== 'encrypted') {
        handle(frame);
        return;
      }
      let inner: ReturnType<typeof parseServerFrame>;
      try {
        if (!cipher) throw new Error('no message_key');
        inner = parseServerFrame(await (await cipher).decrypt(frame.jwe));
      } catch {
        this.onError(new RealtimeError('decryption_failed', 'an encrypted frame could not be read'));
        return;
      }
      if (inner && inner.type !== 'encrypted') handle(inner);
    });
  }
}
