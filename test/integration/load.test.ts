import { describe, expect, it } from 'vitest';
import { runLoad } from '../../bench/load.ts';

describe('load, small (npm run load runs 1,000 sockets)', () => {
  it('loses and doubles nothing with 40 sockets of 10 users in 4 rooms, the sweeper every second and sockets churning', async () => {
    const report = await runLoad({ users: 10, socketsPerUser: 4, rooms: 4, messagesPerUser: 3 });
    expect(report.problems).toEqual([]);
    expect(report.messages).toBe(30);
    expect(report.sweeps).toBeGreaterThan(0);
    expect(report.reconnects + report.rejoins).toBeGreaterThan(0);
    expect(report.deliveryFailed).toBe(0);
  }, 60_000);
});
