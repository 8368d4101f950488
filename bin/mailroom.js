#!/usr/bin/env node
// The `mailroom` command: runs the TypeScript CLI (src/cli/main.ts) through tsx, as `npm start` runs the server.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
