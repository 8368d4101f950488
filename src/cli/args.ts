import { parseArgs } from 'node:util';
import { ACCOUNT_ID_RULE, isValidAccountId } from '../redis/keys.js';
import { UsageError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export type Command =
  | { name: 'help' }
  | { name: 'status'; account?: string; state?: string }
  | { name: 'link'; account: string; accessToken?: string; refreshToken?: string; ignore: string[]; wait: boolean; timeoutMs?: number }
  | { name: 'link-url' }
  | { name: 'unlink'; account: string }
  | { name: 'resync'; account: string }
  | { name: 'entries'; account: string }
  | { name: 'tail'; account: string; intervalMs: number };

export interface Invocation {
  command: Command;
  url: string;
  /** Undefined for `help`; every other command needs it. */
  token?: string;
  json: boolean;
}

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'access-token': { type: 'string' },
  'refresh-token': { type: 'string' },
  ignore: { type: 'string', multiple: true },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  interval: { type: 'string' },
  state: { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Options each command takes besides the global ones (url, token, json, help). */
const COMMAND_OPTIONS: Record<Exclude<Command['name'], 'help'>, OptionName[]> = {
  status: ['state'],
  link: ['access-token', 'refresh-token', 'ignore', 'wait', 'timeout'],
  'link-url': [],
  unlink: [],
  resync: [],
  entries: [],
  tail: ['interval'],
};


/**
 * Parses `argv` (without node and the script) and the environment into what to do. Throws
 * `UsageError` with a message an operator can act on.
 */
export function parseInvocation(argv: readonly string[], env: Record<string, string | undefined>): Invocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true; tokens: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true, tokens: true });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values, positionals, tokens } = parsed;
  refuseRepeatedValues(tokens);
  const url = normaliseUrl(values.url ?? env.MAILROOM_URL ?? DEFAULT_URL, values.url !== undefined ? '--url' : 'MAILROOM_URL');
  const json = values.json ?? false;
  const [name, ...rest] = positionals;
  if (values.help || name === undefined || name === 'help') return { command: { name: 'help' }, url, json };
  if (!(name in COMMAND_OPTIONS)) throw new UsageError(`unknown command "${name}"`);
  const commandName = name as keyof typeof COMMAND_OPTIONS;

  const allowed = new Set<OptionName>(['url', 'token', 'json', 'help', ...COMMAND_OPTIONS[commandName]]);
  for (const option of Object.keys(values) as OptionName[]) {
    if (!allowed.has(option)) throw new UsageError(`${commandName} does not take --${option}`);
  }

  const token = values.token ?? env.ADMIN_TOKEN;
  if (!token) throw new UsageError('no admin token: pass --token <token> or set ADMIN_TOKEN');

  const account = (required: boolean): string | undefined => {
    if (rest.length > 1) throw new UsageError(`${commandName} takes one account, got ${rest.length}: ${rest.join(' ')}`);
    const id = rest[0];
    if (id === undefined) {
      if (required) throw new UsageError(`${commandName} needs an account id: mailroom ${commandName} <account>`);
      return undefined;
    }
    // The server's own rule: refused here, before a request that would only be refused there.
    if (!isValidAccountId(id)) throw new UsageError(`"${id}" is not an account id (${ACCOUNT_ID_RULE})`);
    return id;
  };

  let command: Command;
  switch (commandName) {
    case 'status': {
      const one = account(false);
      // The server checks the name (a state of the account machine) and says which ones there are.
      if (one !== undefined && values.state !== undefined) throw new UsageError('--state lists accounts in that state; it goes without an account');
      command = { name: 'status', account: one, ...(values.state !== undefined ? { state: values.state } : {}) };
      break;
    }
    case 'link': {
      const accessToken = values['access-token'];
      const refreshToken = values['refresh-token'];
      if (!accessToken && !refreshToken) throw new UsageError('link needs --access-token <token> or --refresh-token <token>');
      if (accessToken === '-' && refreshToken === '-') throw new UsageError('only one of --access-token and --refresh-token can be read from stdin');
      if (values.timeout !== undefined && !values.wait) throw new UsageError('--timeout goes with --wait');
      command = {
        name: 'link',
        account: account(true)!,
        accessToken,
        refreshToken,
        ignore: values.ignore ?? [],
        wait: values.wait ?? false,
        timeoutMs: values.timeout === undefined ? undefined : positiveNumber(values.timeout, '--timeout') * 1000,
      };
      break;
    }
    case 'link-url':
      // Dropbox says which account it is once someone signs in through the link.
      if (rest.length) throw new UsageError(`link-url takes no account (the one signed in to Dropbox through the link is linked), got: ${rest.join(' ')}`);
      command = { name: 'link-url' };
      break;
    case 'tail':
      command = { name: 'tail', account: account(true)!, intervalMs: values.interval === undefined ? 1000 : Math.max(50, positiveNumber(values.interval, '--interval')) };
      break;
    default:
      command = { name: commandName, account: account(true)! };
  }
  return { command, url, token, json };
}

/**
 * parseArgs keeps the last of a value given twice (`--url a --url b`): one of them was a mistake,
 * and acting on the other against the wrong server or account is worse than asking. Values are not
 * echoed (`--token`, `--access-token` are secrets). Booleans given twice mean the same; `--ignore`
 * is meant to repeat.
 */
function refuseRepeatedValues(tokens: readonly { kind: string; name?: string }[]): void {
  const seen = new Map<OptionName, number>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const name = token.name as OptionName;
    const option: { type: string; multiple?: boolean } = OPTIONS[name];
    if (option.type !== 'string' || option.multiple) continue;
    seen.set(name, (seen.get(name) ?? 0) + 1);
  }
  for (const [name, count] of seen) {
    if (count > 1) throw new UsageError(`--${name} was given ${count} times; it takes one value`);
  }
}

function positiveNumber(value: string, option: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new UsageError(`${option} must be a positive number, got "${value}"`);
  return number;
}

function normaliseUrl(value: string, source: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${source} "${value}" is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${source} "${value}" must be http:// or https://`);
  return url.href.replace(/\/+$/, '');
}
