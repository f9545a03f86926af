/** Anything the local system opens and must close: a server, a client, a timer. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * What the local system has opened so far, closed in the reverse order of opening (front doors
 * first, the store last). A part that fails to close does not keep the others open, and
 * `close()` runs once however often it is called.
 */
export class ClosingOrder {
  private readonly opened: Closable[] = [];
  private closing: Promise<void> | undefined;

  push(part: Closable): void {
    this.opened.push(part);
  }

  close(): Promise<void> {
    this.closing ??= this.closeAll();
    return this.closing;
  }

  private async closeAll(): Promise<void> {
    for (const part of this.opened.splice(0).reverse()) await part.close().catch(() => {});
  }
}
