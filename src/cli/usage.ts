/** The help text (`mailroom --help`, and after every usage error). */
export const USAGE = `Usage: mailroom <command> [options]

Commands:
  status [account]              one account's status, or every linked account
      --state <state>           only the accounts in this state, e.g. --state awaitingRelink
  link <account>                link (or re-link) an account and start its sync
      --access-token <token>    a Dropbox access token ("-" reads it from stdin)
      --refresh-token <token>   a Dropbox refresh token ("-" reads it from stdin)
      --ignore <glob>           a path never synced (repeatable), e.g. --ignore 'drafts/**'
      --wait                    show the sync's progress and return when it is idle
      --timeout <seconds>       with --wait: give up after this long (exit 4)
  link-url                      a one-time link that links an account through Dropbox in a browser
  unlink <account>              stop syncing; the mirror and entries stay
  resync <account>              the next listing is a full one, checked against the mirror
  entries <account>             the account's entries (path and title)
  tail <account>                follow the account: one line per change (Ctrl-C stops)
      --interval <ms>           how often to ask (default 1000)

Options:
  --url <url>        the server (default $MAILROOM_URL, else http://127.0.0.1:8080)
  --token <token>    the admin token (default $ADMIN_TOKEN)
  --json             print JSON instead of text
  -h, --help         this text

Exit codes: 0 ok, 1 the server refused (its message is printed), 2 usage error,
3 server unreachable, 4 --wait gave up (timeout, or the sync cannot go on).`;
