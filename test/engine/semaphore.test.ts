import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../src/engine/semaphore.js';

/** The download and write slots: a place is taken in order, given back once, passed on to the next waiter. */
describe('Semaphore', () => {
  it('holds at most its limit, serves waiters in order, and counts a release once however often it is called', async () => {
    const slots = new Semaphore(2);
    const a = await slots.acquire();
    const b = await slots.acquire();
    expect(slots.inUse).toBe(2);
    const order: string[] = [];
    const c = slots.acquire().then((release) => (order.push('c'), release));
    const d = slots.acquire().then((release) => (order.push('d'), release));
    await Promise.resolve();
    expect(order).toEqual([]);
    a();
    a(); // a second call must not free a second place
    const releaseC = await c;
    await Promise.resolve();
    expect(order).toEqual(['c']);
    expect(slots.inUse).toBe(2);
    b();
    const releaseD = await d;
    expect(order).toEqual(['c', 'd']);
    releaseC();
    releaseD();
    expect(slots.inUse).toBe(0);
  });

  it('gives the place back when the task of run fails', async () => {
    const slots = new Semaphore(1);
    await expect(slots.run(async () => { throw new Error('task failed'); })).rejects.toThrow('task failed');
    expect(slots.inUse).toBe(0);
    expect(await slots.run(async () => 'next')).toBe('next');
  });
});
