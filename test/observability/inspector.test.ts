import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { sanitizeContext, sanitizeEvent, sanitizeInspectionEvent, startInspection, type Inspection } from '../../src/observability/inspector.js';
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * INSPECT=1: the engine runs with the WebSocket inspector and its loopback relay; a viewer (here a
 * plain `ws` client, in real life the relay's page) sees each account actor move through its states.
 */
let h: Harness;
let inspection: Inspection;
let viewer: WebSocket;
const received: string[] = [];

beforeAll(async () => {
  inspection = await startInspection({ port: 0 });
  h = await startHarness({ engine: { inspect: inspection.inspect } });
  viewer = new WebSocket(inspection.wsUrl);
  viewer.on('message', (data) => received.push(String(data)));
  await new Promise((resolve, reject) => {
    viewer.once('open', resolve);
    viewer.once('error', reject);
  });
});
afterAll(async () => {
  viewer?.close();
  await h?.close();
  await inspection?.close();
});

type Message = { type: string; sessionId: string; name?: string; snapshot?: { value?: unknown; context?: { accountId?: string } }; event?: { type: string } };

describe('the Stately inspector', () => {
  it("shows an account's actor going idle > fetching > applying > downloading > finishing > idle, with no token or file content", async () => {
    const account = 'dbid:inspected';
    const accessToken = 'sl.inspector-secret-access-token-0123456789';
    const marker = 'FILE-CONTENT-MARKER-7f3a9c';
    h.emulator.model.addAccount(account, { accessToken });
    h.emulator.model.writeFile(account, '/posts/hello.md', `# Hello\n\n${marker}`);
    await h.linkAccount(account, { accessToken });
    await h.waitForIdle(account);

    const states = () => {
      const messages = received.map((m) => JSON.parse(m) as Message);
      const root = messages.find((m) => m.type === '@xstate.actor' && m.name === 'account' && m.snapshot?.context?.accountId === account);
      if (!root) return [];
      const values = messages.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === root.sessionId).map((m) => String(m.snapshot?.value));
      return values.filter((v, i) => v !== values[i - 1]);
    };
    await waitUntil(() => states().join(' ').includes('idle fetching applying downloading finishing idle'), 10_000, 'the states in the inspector stream');
    expect(states().slice(0, 6)).toEqual(['idle', 'fetching', 'applying', 'downloading', 'finishing', 'idle']);

    const messages = received.map((m) => JSON.parse(m) as Message);
    // The events that moved it, by type (the done events of each step, their outputs dropped).
    const eventTypes = messages.filter((m) => m.type === '@xstate.event').map((m) => m.event?.type ?? '');
    expect(eventTypes).toContain('WEBHOOK');
    expect(eventTypes.some((t) => t.startsWith('xstate.done.actor'))).toBe(true);
    const all = received.join('\n');
    expect(all).not.toContain(accessToken);
    expect(all).not.toContain('inspector-secret');
    expect(all).not.toContain(marker);
    expect(all).not.toContain('"output"');
  });

  it('serves the viewer page and refuses WebSocket viewers from other web origins', async () => {
    const page = await fetch(inspection.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('stately.ai/inspect');
    const foreign = new WebSocket(inspection.wsUrl, { headers: { Origin: 'https://evil.example' } });
    const outcome = await new Promise<string>((resolve) => {
      foreign.once('open', () => resolve('open'));
      foreign.once('error', () => resolve('refused'));
    });
    foreign.close();
    expect(outcome).toBe('refused');
    expect(inspection.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});

describe('the sanitizers', () => {
  it('drop token-like keys, outputs, whole errors and bearer strings; keep state, event type and small context', () => {
    const error = Object.assign(new Error('401 for Bearer sl.abcdefghijklmnopqrstuvwxyz'), { failure: { kind: 'auth' }, response: { headers: { authorization: 'Bearer x' } } });
    const snapshotEvent = {
      type: '@xstate.snapshot',
      sessionId: 'x:0',
      rootId: 'x:0',
      id: null,
      createdAt: '1',
      _version: '0.7.2',
      snapshot: {
        status: 'active',
        value: 'backoff',
        context: { accountId: 'dbid:a', attempt: 2, retryAt: 5, credentials: { accessToken: 'secret-1' }, refreshToken: 'secret-2', lastError: { kind: 'auth', message: 'bad token', at: 3, jitter: 0.5 } },
        output: { content: 'secret-3' },
        children: { listChanges: { system: { everything: 'secret-4' } } },
        historyValue: { deep: 'secret-5' },
      },
      event: { type: 'xstate.error.actor.0.account.fetching', error, actorId: '0.account.fetching' },
    } as unknown as StatelyInspectionEvent;
    const cleaned = sanitizeInspectionEvent(snapshotEvent) as unknown as Record<string, unknown>;
    const text = JSON.stringify(cleaned);
    for (const secret of ['secret-1', 'secret-2', 'secret-3', 'secret-4', 'secret-5', 'abcdefghijklmnop', 'authorization']) expect(text).not.toContain(secret);
    expect(cleaned.snapshot).toEqual({
      status: 'active',
      value: 'backoff',
      context: { accountId: 'dbid:a', attempt: 2, retryAt: 5, lastError: { kind: 'auth', message: 'bad token', at: 3 } },
      children: { listChanges: { id: 'listChanges' } },
    });
    expect(cleaned.event).toEqual({ type: 'xstate.error.actor.0.account.fetching', error: { kind: 'auth', message: '401 for Bearer [redacted]' }, actorId: '0.account.fetching' });
    // Idempotent: the WebSocket adapter serializes again the events it held while disconnected.
    expect(sanitizeInspectionEvent(cleaned as unknown as StatelyInspectionEvent)).toEqual(cleaned);

    expect(sanitizeEvent({ type: 'xstate.done.actor.0.account.downloading', output: { bytes: 12, files: ['/a.md'] } })).toEqual({ type: 'xstate.done.actor.0.account.downloading' });
    expect(sanitizeContext({ accountId: 'dbid:a', token: 't', nested: { accessToken: 'a', ok: 1 } })).toEqual({ accountId: 'dbid:a', nested: { ok: 1 } });
  });
});
