import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as library from '../../src/index.js';
import { accountKeys } from '../../src/redis/keys.js';

/**
 * The reference tables an operator follows, checked against what they describe: a configuration
 * variable, a Redis key or a library export added without its line in the docs fails here.
 */
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('the docs list what the code has', () => {
  it('contract.md has a row for every variable loadConfig reads', () => {
    const config = read('src/config.ts');
    const schema = config.slice(config.indexOf('const schema = z.object({'), config.indexOf('});', config.indexOf('const schema = z.object({')));
    const variables = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!);
    expect(variables.length).toBeGreaterThan(20);
    const contract = read('docs/contract.md');
    // NODE_ENV is read only as MAILROOM_ENV's default (its row says so).
    const missing = variables.filter((v) => v !== 'NODE_ENV' && !contract.includes(`| \`${v}\` |`));
    expect(missing).toEqual([]);
  });

  it("architecture.md's Redis key table has every key of an account", () => {
    const architecture = read('docs/architecture.md');
    const suffixes = [...new Set(Object.values(accountKeys('A')).map((key) => key.slice('mr:{A}:'.length)))];
    const missing = suffixes.filter((suffix) => !architecture.includes(`| \`mr:{A}:${suffix}\` |`));
    expect(missing).toEqual([]);
  });

  it('library.md names every export of src/index.ts', () => {
    const index = read('src/index.ts');
    const typeNames = [
      ...[...index.matchAll(/^export (?:interface|type|class|async function|function) (\w+)/gm)].map((m) => m[1]!),
      ...[...index.matchAll(/^export (?:type )?\{([^}]*)\}/gm)].flatMap((m) => m[1]!.split(',').map((name) => name.trim()).filter(Boolean)),
    ];
    const names = [...new Set([...Object.keys(library), ...typeNames])];
    const doc = read('docs/library.md');
    // `createEngine(options)` names it too.
    const missing = names.filter((name) => !new RegExp(`\`${name}[\`(<]`).test(doc));
    expect(missing).toEqual([]);
  });
});
