import { describe, expect, it } from 'vitest';
import { advanceProgress, formatDuration, INITIAL_PROGRESS, percent, renderProgressBar, renderSyncProgress, worthALine } from '../../src/cli/progress.js';

describe('renderProgressBar', () => {
  it.each([
    [0, 10, 10, '[----------]'],
    [1, 10, 10, '[#---------]'],
    [5, 10, 10, '[#####-----]'],
    [9, 10, 10, '[#########-]'],
    [10, 10, 10, '[##########]'],
    [1, 3, 12, '[####--------]'],
    [0, 0, 5, '[-----]'],
    [12, 10, 4, '[####]'],
    [-1, 10, 4, '[----]'],
  ])('%i of %i in %i cells is %s', (done, total, width, bar) => {
    expect(renderProgressBar(done, total, width)).toBe(bar);
  });

  it('is never full before the end, and always as wide as asked', () => {
    for (let total = 1; total <= 50; total++) {
      for (let done = 0; done <= total; done++) {
        const bar = renderProgressBar(done, total, 20);
        expect(bar).toHaveLength(22);
        expect(bar === `[${'#'.repeat(20)}]`).toBe(done === total);
      }
    }
  });

  it('keeps at least one cell', () => {
    expect(renderProgressBar(1, 2, 0)).toBe('[-]');
  });
});

describe('advanceProgress', () => {
  it('counts finished downloads from the shrinking queue and grows the total when more are queued', () => {
    let counts = INITIAL_PROGRESS;
    const seen: string[] = [];
    for (const pending of [0, 0, 40, 30, 30, 55, 10, 0]) {
      counts = advanceProgress(counts, pending);
      seen.push(`${counts.done}/${counts.total}`);
    }
    expect(seen).toEqual(['0/0', '0/0', '0/40', '10/40', '10/40', '10/65', '55/65', '65/65']);
  });
});

describe('renderSyncProgress', () => {
  it('draws the bar, the counts, the percentage and the elapsed time', () => {
    expect(renderSyncProgress({ accountId: 'dbid:a', state: 'downloading', done: 12, total: 40, elapsedMs: 5_400 }, 10)).toBe(
      'dbid:a  downloading  [###-------]  12/40 files  30%  5s',
    );
    expect(renderSyncProgress({ accountId: 'dbid:a', state: 'finishing', done: 1, total: 1, elapsedMs: 200 }, 4)).toBe('dbid:a  finishing  [####]  1/1 file  100%  200ms');
  });

  it('says what it is doing before anything is queued', () => {
    expect(renderSyncProgress({ accountId: 'dbid:a', state: 'fetching', done: 0, total: 0, elapsedMs: 61_000 })).toBe('dbid:a  fetching  listing…  1m01s');
    expect(renderSyncProgress({ accountId: 'dbid:a', state: 'idle', done: 0, total: 0, elapsedMs: 0 })).toBe('dbid:a  idle  nothing to download  0ms');
  });
});

describe('helpers', () => {
  it.each([
    [0, '0ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [59_999, '59s'],
    [60_000, '1m00s'],
    [3_725_000, '1h02m'],
  ])('formatDuration(%i) is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('percent floors and clamps', () => {
    expect(percent(0, 0)).toBe(0);
    expect(percent(2, 3)).toBe(66);
    expect(percent(5, 3)).toBe(100);
  });

  it('a log gets a line per state change or tenth of progress, not per poll', () => {
    expect(worthALine(undefined, { state: 'fetching', done: 0, total: 0 })).toBe(true);
    expect(worthALine({ state: 'fetching', done: 0, total: 0 }, { state: 'fetching', done: 0, total: 0 })).toBe(false);
    expect(worthALine({ state: 'fetching', done: 0, total: 0 }, { state: 'downloading', done: 0, total: 100 })).toBe(true);
    expect(worthALine({ state: 'downloading', done: 1, total: 100 }, { state: 'downloading', done: 9, total: 100 })).toBe(false);
    expect(worthALine({ state: 'downloading', done: 9, total: 100 }, { state: 'downloading', done: 10, total: 100 })).toBe(true);
  });
});
