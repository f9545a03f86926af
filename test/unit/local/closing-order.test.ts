import { describe, expect, it } from 'vitest';
import { ClosingOrder } from '../../../local/closing-order.ts';

describe('the closing order of the local system', () => {
  it('closes the parts in the reverse order of opening, each after the one before has closed', async () => {
    const events: string[] = [];
    const order = new ClosingOrder();
    for (const name of ['store', 'client', 'gateway']) {
      order.push({
        close: async () => {
          events.push(`${name} closing`);
          await new Promise((r) => setTimeout(r, 5));
          events.push(`${name} closed`);
        },
      });
    }
    await order.close();
    expect(events).toEqual([
      'gateway closing',
      'gateway closed',
      'client closing',
      'client closed',
      'store closing',
      'store closed',
    ]);
  });

  it('goes on closing the rest when a part fails to close', async () => {
    const closed: string[] = [];
    const order = new ClosingOrder();
    order.push({ close: async () => void closed.push('store') });
    order.push({ close: () => Promise.reject(new Error('already gone')) });
    order.push({ close: async () => void closed.push('gateway') });
    await expect(order.close()).resolves.toBeUndefined();
    expect(closed).toEqual(['gateway', 'store']);
  });

  it('closes once however often close() is called, and every call waits for the same end', async () => {
    let closes = 0;
    const order = new ClosingOrder();
    order.push({ close: async () => void closes++ });
    const first = order.close();
    const second = order.close();
    expect(second).toBe(first);
    await Promise.all([first, second, order.close()]);
    expect(closes).toBe(1);
  });
});
