/** The longest WebSocket frame header: 2 bytes, an 8-byte length, a 4-byte mask key. */
const MAX_HEADER_BYTES = 14;

interface FrameHeader {
  headerLength: number;
  payloadLength: number;
  opcode: number;
}

/**
 * Watches the raw bytes a client sends and reports each frame's header. `ws` only limits whole
 * messages (`maxPayload`), while API Gateway also limits every single frame, so frame sizes are
 * read here, alongside `ws`'s own parser. Once `onFrame` returns false the watcher stops.
 */
export function createFrameWatcher(onFrame: (opcode: number, payloadLength: number) => boolean) {
  let partial: Buffer = Buffer.alloc(0);
  let skip = 0;
  let stopped = false;

  return (chunk: Buffer): void => {
    let offset = 0;
    while (!stopped && offset < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - offset);
        skip -= n;
        offset += n;
        continue;
      }
      let header: FrameHeader | undefined;
      if (partial.length === 0) {
        header = parseHeader(chunk, offset);
        if (!header) {
          partial = Buffer.from(chunk.subarray(offset));
          return;
        }
        offset += header.headerLength;
      } else {
        const before = partial.length;
        const combined = Buffer.concat([partial, chunk.subarray(offset, offset + MAX_HEADER_BYTES)]);
        header = parseHeader(combined, 0);
        if (!header) {
          partial = combined;
          return;
        }
        offset += header.headerLength - before;
        partial = Buffer.alloc(0);
      }
      if (!onFrame(header.opcode, header.payloadLength)) stopped = true;
      skip = header.payloadLength;
    }
  };
}

function parseHeader(buf: Buffer, at: number): FrameHeader | undefined {
  const available = buf.length - at;
  if (available < 2) return undefined;
  const opcode = buf.readUInt8(at) & 0x0f;
  const second = buf.readUInt8(at + 1);
  let payloadLength = second & 0x7f;
  let headerLength = 2;
  if (payloadLength === 126) {
    if (available < 4) return undefined;
    payloadLength = buf.readUInt16BE(at + 2);
    headerLength = 4;
  } else if (payloadLength === 127) {
    if (available < 10) return undefined;
    payloadLength = buf.readUInt32BE(at + 2) * 2 ** 32 + buf.readUInt32BE(at + 6);
    headerLength = 10;
  }
  if (second & 0x80) headerLength += 4;
  if (available < headerLength) return undefined;
  return { headerLength, payloadLength, opcode };
}
