import { DeliveryTracker } from './delivery.ts';
import { RealtimeError } from './errors.ts';
import type { Emit } from './events.ts';
import { asRealtimeError } from './failure.ts';
import type { ChatMessage, ClientFrame, JoinedFrame, ReplyOf, Since } from './protocol.ts';

/** What the rooms need of the client: its requests and whether the socket is open. */
export interface RoomsHost {
  request<F extends ClientFrame>(frame: F): Promise<ReplyOf[F['type']]>;
  isOpen(): boolean;
  emit: Emit;
}

/**
 * The rooms the client is in, and their recovery: gaps in a room's numbering waited for and
 * then asked about, and after a reconnect each room joined again from the last message held.
 * The bookkeeping of messages is `DeliveryTracker`'s; this holds the timers and the requests.
 */
export class Rooms {
  readonly #rooms = new Map<string, number>();
  /** Counts `removed` frames; each room's last one, so a join can tell one that overtook its reply. */
  #removals = 0;
  readonly #removedAt = new Map<string, number>();
  readonly #delivery = new DeliveryTracker();
  readonly #gapTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Per room, the highest `seq` known when the socket dropped: the rejoin trusts its history up to there. */
  readonly #dropTargets = new Map<string, number>();

  constructor(
    readonly settings: { readonly rejoinHistory: number; readonly gapWaitMs: number },
    readonly host: RoomsHost,
  ) {}

  get names(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Joins `room` (`history` messages of its latest); a `removed` that overtook the reply is final. */
  async join(room: string, history: number): Promise<JoinedFrame> {
    const before = this.#removals;
    const joined = await this.host.request({ type: 'join', room, history });
    if ((this.#removedAt.get(room) ?? 0) > before)
      throw new RealtimeError('forbidden', `removed from ${room}: access revoked`);
    this.#rooms.set(room, history);
    this.#delivery.joined(room, joined);
    this.#watchGap(room);
    return joined;
  }

  /** Stops tracking a room: not rejoined, no gap watched. */
  drop(room: string): void {
    this.#rooms.delete(room);
    this.#delivery.forget(room);
    this.#stopGapTimer(room);
  }

  /** Out for good (its grant was deleted): a rejoin after a reconnect would be refused. */
  removed(room: string): void {
    this.drop(room);
    this.#removedAt.set(room, ++this.#removals);
  }

  /** A message delivered live: emitted once each, in order, gaps waited for. */
  receive(message: ChatMessage): void {
    for (const m of this.#delivery.receive(message)) this.host.emit('message', m);
    this.#watchGap(message.room);
  }

  /** The socket dropped: each room remembers how far its numbering was known, gaps wait for the rejoin. */
  socketDropped(): void {
    for (const room of this.#rooms.keys()) {
      this.#dropTargets.set(room, Math.max(this.#dropTargets.get(room) ?? 0, this.#delivery.target(room)));
      this.#stopGapTimer(room);
    }
  }

  /** The session ended: no rooms, no messages held. */
  clear(): void {
    this.#delivery.clear();
    this.#rooms.clear();
  }

  /** After a reconnect: every room joined again from the last message held. */
  async rejoin(): Promise<void> {
    await Promise.all([...this.#rooms.keys()].map((room) => this.#rejoinRoom(room)));
    this.#dropTargets.clear();
  }

  async #rejoinRoom(room: string): Promise<void> {
    const since = this.#delivery.position(room);
    try {
      const joined = await this.host.request({
        type: 'join',
        room,
        history: this.settings.rejoinHistory,
        ...(since ? { since } : {}),
      });
      // Removed (a `removed` that overtook this reply) or left meanwhile: not tracked again.
      if (!this.#rooms.has(room)) return;
      const recovered = joined.recovered === true;
      const restored = this.#applyJoin(room, joined, since, this.#dropTargets.get(room) ?? 0);
      if (!recovered || !this.#delivery.waiting(room)) {
        this.host.emit('rejoined', { room, recovered, restored });
        return;
      }
      // Messages numbered by the time of the join but not in its history may still be on
      // their way into the store: the room is asked again once they have had time.
      this.#stopGapTimer(room);
      const cutoff = this.#delivery.target(room);
      void new Promise((resolve) => setTimeout(resolve, this.settings.gapWaitMs))
        .then(() => this.#catchUp(room, cutoff))
        .then((more) => this.host.emit('rejoined', { room, recovered, restored: restored + more }));
    } catch (err) {
      const e = asRealtimeError(err);
      // Refused for good (a grant deleted while the socket was down): out, as on `removed`.
      if (e.code === 'forbidden') this.drop(room);
      this.host.emit(
        'error',
        new RealtimeError(e.code, `could not rejoin ${room}: ${e.message}`, e.status, e.retryAfterS),
      );
    }
  }

  /** Hands a join's messages to the application; returns how many. */
  #applyJoin(room: string, joined: JoinedFrame, since: Since | undefined, cutoff: number): number {
    const { emit, reset } = this.#delivery.joined(room, joined, since, cutoff);
    if (reset) this.host.emit('reset', { room });
    for (const m of emit) this.host.emit('message', m);
    this.#watchGap(room);
    return emit.length;
  }

  /**
   * A room with a gap in its numbering waits `gapWaitMs` for the missing messages, then asks
   * for them; numbers known by then and still missing were skipped (never stored).
   */
  #watchGap(room: string): void {
    if (!this.#delivery.waiting(room)) {
      this.#stopGapTimer(room);
      return;
    }
    if (this.#gapTimers.has(room)) return;
    const cutoff = this.#delivery.target(room);
    this.#gapTimers.set(
      room,
      setTimeout(() => {
        this.#gapTimers.delete(room);
        if (this.#rooms.has(room)) void this.#catchUp(room, cutoff);
        else this.#skipTo(room, cutoff);
      }, this.settings.gapWaitMs),
    );
  }

  #stopGapTimer(room: string): void {
    clearTimeout(this.#gapTimers.get(room));
    this.#gapTimers.delete(room);
  }

  /**
   * A room the client did not join (its `user:` room, say) cannot be asked again: what has not
   * come by the end of the wait was skipped, and the messages held after it are handed over.
   */
  #skipTo(room: string, cutoff: number): void {
    for (const m of this.#delivery.skipTo(room, cutoff)) this.host.emit('message', m);
    this.#watchGap(room);
  }

  /** Asks the room for what follows the last message held; returns how many messages that emitted. */
  async #catchUp(room: string, cutoff: number): Promise<number> {
    const since = this.#delivery.position(room);
    // While the socket is down, the rejoin after the reconnect does this.
    if (!since || !this.#rooms.has(room) || !this.host.isOpen()) return 0;
    try {
      const joined = await this.host.request({
        type: 'join',
        room,
        since,
        history: this.settings.rejoinHistory,
      });
      return this.#rooms.has(room) ? this.#applyJoin(room, joined, since, cutoff) : 0;
    } catch (err) {
      const e = asRealtimeError(err);
      if (e.code === 'disconnected' || e.code === 'not_connected') return 0;
      if (e.code === 'rate_limited') {
        setTimeout(() => this.#watchGap(room), (e.retryAfterS ?? 1) * 1000);
        return 0;
      }
      this.host.emit(
        'error',
        new RealtimeError(e.code, `could not catch up in ${room}: ${e.message}`, e.status),
      );
      return 0;
    }
  }
}
