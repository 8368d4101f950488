import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { accountMachine } from '../machines/account.machine.js';
import { machineMarkdown } from '../src/diagram/mermaid.js';

/** Writes docs/machine.md from the account machine; test/machine/diagram.test.ts fails when it is stale. */
export const MACHINE_DOC_PATH = fileURLToPath(new URL('../docs/machine.md', import.meta.url));

export function renderMachineDoc(): string {
  return machineMarkdown(accountMachine, { title: 'Account machine', source: 'machines/account.machine.ts' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(MACHINE_DOC_PATH, renderMachineDoc());
  console.log(`wrote ${MACHINE_DOC_PATH}`);
}
