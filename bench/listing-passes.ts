import { linkAccount, pool, postWebhook, startStack, waitUntil, isIdle, type BenchOptions, type FigureResult } from './lib.js';

/**
 * Figure 3: listing passes caused by K webhooks arriving during one sync. An account is synced
 * slowly (download latency) and, once its first listing is done, K signed webhooks are posted
 * while it downloads. Counted: how many times the actor enters `fetching` afterwards, and the
 * listing calls the emulator served. The naive baseline lists once per webhook: K passes.
 */
export async function listingPasses(options: BenchOptions): Promise<FigureResult> {
  const ks = options.quick ? [1, 10, 100] : [1, 10, 1000];
  const files = options.quick ? 60 : 400;
  const stack = await startStack({ engine: { downloadsPerAccount: 8, downloadConcurrency: 8, idleTimeoutMs: 600_000 } });
  stack.emulator.faults.setLatency(options.quick ? 20 : 50, 'files/download');
  const rows: Record<string, { passes: number; listingCalls: number; duringOneSync: boolean; webhookSeconds: number }> = {};
  try {
    for (const k of ks) {
      const account = `dbid:passes-${k}`;
      stack.emulator.model.addAccount(account, { accessToken: `token-${account}` });
      for (let i = 0; i < files; i++) stack.emulator.model.writeFile(account, `/f/${i}.txt`, `file ${i}`);
      await linkAccount(stack, account);
      await waitUntil(() => stack.engine.host.actor(account)?.getSnapshot().value === 'downloading', 30_000, 'the first download phase', 2);
      const actor = stack.engine.host.actor(account)!;
      let passes = 0;
      let last = String(actor.getSnapshot().value);
      let wentIdle = false;
      const sub = actor.subscribe((s) => {
        const state = String(s.value);
        if (state !== last && state === 'fetching') passes++;
        if (state === 'idle') wentIdle = true;
        last = state;
      });
      stack.emulator.stats.resetStats();
      stack.emulator.model.writeFile(account, '/changed.txt', 'a change during the sync');
      const started = Date.now();
      await pool(Array.from({ length: k }), 32, async () => {
        const status = await postWebhook(stack.url, [account]);
        if (status !== 200) throw new Error(`webhook answered ${status}`);
      });
      const webhookSeconds = (Date.now() - started) / 1000;
      const duringOneSync = !wentIdle;
      await waitUntil(() => isIdle(stack, account), 60_000, 'the account to be idle', 5);
      sub.unsubscribe();
      const listingCalls = stack.emulator.stats.calls(account, 'files/list_folder') + stack.emulator.stats.calls(account, 'files/list_folder/continue');
      rows[`K=${k}`] = { passes, listingCalls, duringOneSync, webhookSeconds };
      options.log(`  K=${k}: ${passes} listing pass(es), ${listingCalls} listing call(s), webhooks landed during one sync: ${duringOneSync}`);
    }
    const worst = Math.max(...Object.values(rows).map((r) => r.passes));
    const allOne = Object.values(rows).every((r) => r.passes === 1 && r.duringOneSync);
    return {
      id: '3',
      name: `listing passes for K webhooks during one sync (K = ${ks.join(', ')})`,
      measured: worst,
      unit: 'pass(es), worst K',
      baseline: ks[ks.length - 1]!,
      baselineLabel: 'naive: 1 per webhook, at the largest K',
      ratio: worst / ks[ks.length - 1]!,
      target: 'exactly 1 for every K',
      met: allOne,
      details: { filesInTheSync: files, perK: rows },
    };
  } finally {
    await stack.close();
  }
}
