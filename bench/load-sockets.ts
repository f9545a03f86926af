import { type RawData, WebSocket } from 'ws';
import { ORIGIN } from './events.ts';

/** One socket's time in its room: from `joined` received to `leave` sent (or close), ms. */
export interface Span {
  from: number;
  to: number;
}

export interface Sock {
  readonly user: number;
  readonly room: string;
  ws: WebSocket;
  readonly spans: Span[];
  /** messageId -> times received. */
  readonly got: Map<string, number>;
  readonly pending: Map<string, (frame: Record<string, unknown>) => void>;
  /** Churned (leaves, rejoins, reconnects) rather than kept in its room from start to end. */
  readonly churner: boolean;
}

type Frame = Record<string, unknown>;

const now = () => performance.now();

/**
 * The load run's sockets: opens them with each user's token, matches answers to requests,
 * counts what arrives, and notes every broken promise in `problems`.
 */
export class LoadSockets {
  connections = 0;
  reconnects = 0;
  rejoins = 0;
  /** Send-to-receive times of every message received, ms. */
  readonly latencies: number[] = [];
  private nextId = 0;

  constructor(
    private readonly wsUrl: string,
    private readonly tokens: readonly string[],
    private readonly problems: string[],
  ) {}

  /** Opens a socket for `user`, joins `room` and starts counting what it receives. */
  async openAndJoin(user: number, room: string, churner: boolean): Promise<Sock> {
    const sock: Sock = {
      user,
      room,
      ws: await this.open(user),
      spans: [],
      got: new Map(),
      pending: new Map(),
      churner,
    };
    this.attach(sock);
    await this.join(sock);
    return sock;
  }

  /** Notes a broken promise. */
  problem(line: string): void {
    this.problems.push(line);
  }

  /** Sends `frame` with a fresh id and resolves with the frame that answers it. */
  request(sock: Sock, frame: Frame): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const id = `q${++this.nextId}`;
      const timer = setTimeout(() => reject(new Error(`no answer to ${String(frame.type)}`)), 120_000);
      sock.pending.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      sock.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** One turn of churn: an even turn leaves and rejoins, an odd one closes and reconnects. */
  async churnOne(sock: Sock, turn: number): Promise<void> {
    this.endSpan(sock);
    if (turn % 2 === 0) {
      await this.request(sock, { type: 'leave', room: sock.room });
      await this.join(sock);
      this.rejoins++;
      return;
    }
    const closed = new Promise((r) => sock.ws.once('close', r));
    sock.ws.close(1000);
    await closed;
    sock.ws = await this.open(sock.user);
    sock.pending.clear();
    this.attach(sock);
    await this.join(sock);
    this.reconnects++;
  }

  /** Closes every socket still open and waits for each close. */
  async closeAll(socks: readonly Sock[]): Promise<void> {
    await Promise.all(
      socks.map(async (s) => {
        if (s.ws.readyState === WebSocket.CLOSED) return;
        const closed = new Promise((r) => s.ws.once('close', r));
        s.ws.close(1000);
        await closed;
      }),
    );
  }

  private open(user: number): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.wsUrl, ['jwt', this.tokens[user] ?? ''], {
        origin: ORIGIN,
        perMessageDeflate: false,
      });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    });
  }

  private attach(sock: Sock): void {
    this.connections++;
    sock.ws.on('message', (data: RawData) => this.receive(sock, JSON.parse(String(data)) as Frame));
  }

  private receive(sock: Sock, frame: Frame): void {
    if (typeof frame.id === 'string') {
      const done = sock.pending.get(frame.id);
      sock.pending.delete(frame.id);
      done?.(frame);
    }
    if (frame.type === 'message' && typeof frame.messageId === 'string') {
      if (frame.room !== sock.room)
        this.problems.push(`a socket of ${sock.room} got a message of ${frame.room}`);
      sock.got.set(frame.messageId, (sock.got.get(frame.messageId) ?? 0) + 1);
      const text = String(frame.text);
      this.latencies.push(Date.now() - Number(text.slice(text.indexOf('@') + 1)));
    }
    if (frame.type === 'closing')
      this.problems.push(`a socket was closed by the server: ${String(frame.reason)}`);
  }

  private async join(sock: Sock): Promise<void> {
    const answer = await this.request(sock, { type: 'join', room: sock.room });
    if (answer.type !== 'joined') throw new Error(`join answered ${JSON.stringify(answer)}`);
    sock.spans.push({ from: now(), to: Number.POSITIVE_INFINITY });
  }

  private endSpan(sock: Sock): void {
    const span = sock.spans.at(-1);
    if (span && span.to === Number.POSITIVE_INFINITY) span.to = now();
  }
}
