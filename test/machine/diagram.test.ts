import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { accountMachine } from '../../machines/account.machine.js';
import { MACHINE_DOC_PATH, README_PATH, renderMachineDoc, renderReadme } from '../../scripts/diagram.js';
import { machineToMermaid } from '../../src/diagram/mermaid.js';

describe('docs/machine.md', () => {
  it('is what `npm run diagram` generates from the machine now', () => {
    let committed = '';
    try {
      committed = readFileSync(MACHINE_DOC_PATH, 'utf8');
    } catch {
      // reported by the assertion below
    }
    expect(committed, 'docs/machine.md is out of date with machines/account.machine.ts: run `npm run diagram` and commit the result').toBe(renderMachineDoc());
  });

  it('is also what the README shows', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    expect(readme, 'the diagram in README.md is out of date: run `npm run diagram` and commit the result').toBe(renderReadme(readme));
  });

  it('shows every state, the initial state, and every transition of the machine', () => {
    const mermaid = machineToMermaid(accountMachine);
    const lines = mermaid.trimEnd().split('\n');
    expect(lines[0]).toBe('stateDiagram-v2');
    expect(lines).toContain('    [*] --> idle');
    const edges = lines.filter((line) => / --> /.test(line) && !line.includes('[*]'));
    const nodes = new Set(edges.flatMap((line) => line.trim().split(' : ')[0]!.split(' --> ')));
    expect([...nodes].sort()).toEqual(Object.keys(accountMachine.root.states).sort());
    const transitions = Object.values(accountMachine.root.states).reduce((n, node) => n + [...node.transitions.values()].flat().length + (node.always?.length ?? 0), 0);
    expect(edges).toHaveLength(transitions);
    // the labels a reader looks for, and nothing Mermaid's state-diagram lexer would choke on
    expect(edges).toContain('    idle --> fetching : WEBHOOK');
    expect(edges).toContain('    fetching --> backoff : error listChanges');
    expect(edges).toContain('    finishing --> fetching : done finishRun [isDirty]');
    expect(edges).toContain('    backoff --> applying : done waitUntil [isRetrying(applying)]');
    expect(edges.filter((edge) => edge.startsWith('    backoff --> downloading'))).toEqual([]);
    for (const edge of edges) expect(edge.split(' : ')[1]).toMatch(/^[^:;]+$/);
    // `after` timers are lost on restore (see machines/account.machine.ts)
    expect(mermaid).not.toMatch(/after/);
  });

  it('renders delays, eventless transitions, nested and final states', () => {
    const machine = setup({ guards: { ready: () => true } }).createMachine({
      id: 'demo',
      initial: 'waiting',
      states: {
        waiting: { after: { 1500: 'working' }, on: { 'GO-NOW': { target: 'done', guard: 'ready' } } },
        working: { initial: 'one', states: { one: { always: 'two' }, two: { type: 'final' } }, onDone: 'done' },
        done: { type: 'final' },
      },
    });
    expect(machineToMermaid(machine)).toMatchInlineSnapshot(`
      "stateDiagram-v2
          [*] --> waiting
          state working {
              [*] --> working.one
              working.two --> [*]
          }
          done --> [*]
          waiting --> done : GO-NOW [ready]
          waiting --> working : after 1500ms
          working --> done : done
          working.one --> working.two : always
      "
    `);
  });
});
