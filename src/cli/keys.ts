import { Command } from 'commander';
import { ApiKeyService } from '../app/apiKeys.js';
import { parseOrgId, type OrgId } from '../core/ids.js';
import { systemClock } from '../ports/clock.js';
import type { ApiKeyRecord } from '../ports/jobStore.js';
import { addConfigFlags, STORE_FLAG_KEYS } from './configFlags.js';
import { CliError, EXIT, writeJson, type CliIo } from './io.js';
import type { Runner } from './runner.js';
import { withStore } from './storeAccess.js';

/**
 * API key administration, directly on the store (no server needed). The secret is printed
 * once by `create`; nothing else ever prints a secret or a hash.
 */
export function keysCommand(io: CliIo, run: Runner): Command {
  const keys = new Command('keys').description('create, list and revoke API keys (works on the store directly)');
  const storeCmd = (name: string, description: string): Command => addConfigFlags(new Command(name).description(description), STORE_FLAG_KEYS);

  keys.addCommand(
    storeCmd('create', 'create a key bound to one org; prints the key once')
      .requiredOption('--org <org>', 'org the key acts for')
      .option('--label <label>', 'a note to recognise the key by')
      .option('--json', 'print {key_id, org_id, label, key} as JSON')
      .action(
        run(async (opts: { org: string; label?: string; json?: boolean } & Record<string, unknown>) => {
          const orgId = parseOrg(opts.org);
          const created = await withStore(opts, io.env, async (store) => {
            await store.migrate();
            return new ApiKeyService(store, systemClock).create(orgId, opts.label ?? null);
          });
          if (opts.json) {
            writeJson(io.stdout, { key_id: created.keyId, org_id: orgId, label: opts.label ?? null, key: created.key });
          } else {
            io.stdout.write(`key_id: ${created.keyId}\norg_id: ${orgId}\nkey:    ${created.key}\n`);
            io.stderr.write('Store the key now: it is not shown again (only its hash is kept).\n');
          }
          return EXIT.ok;
        }),
      ),
  );

  keys.addCommand(
    storeCmd('list', 'list keys (ids, orgs, labels, dates; never secrets)')
      .option('--org <org>', 'only keys of this org')
      .option('--json', 'print a JSON array')
      .action(
        run(async (opts: { org?: string; json?: boolean } & Record<string, unknown>) => {
          const orgId = opts.org === undefined ? null : parseOrg(opts.org);
          const list = await withStore(opts, io.env, async (store) => {
            await store.migrate();
            return new ApiKeyService(store, systemClock).list(orgId);
          });
          const rows = list.map(publicView);
          if (opts.json) writeJson(io.stdout, rows);
          else if (rows.length === 0) io.stdout.write('no keys\n');
          else for (const r of rows) io.stdout.write(`${r.key_id}  ${r.org_id}  ${r.revoked_at ? 'revoked' : 'active '}  ${r.created_at}  ${r.label ?? ''}\n`);
          return EXIT.ok;
        }),
      ),
  );

  keys.addCommand(
    storeCmd('revoke', 'revoke a key (idempotent); requests with it are refused from then on')
      .argument('<key_id>', 'the key id (key_…), as printed by create/list')
      .action(
        run(async (keyId: string, opts: Record<string, unknown>) => {
          if (!/^key_[0-9a-z]{1,64}$/.test(keyId)) throw new CliError(`"${keyId}" is not a key id (key_…)`, EXIT.usage);
          const revoked = await withStore(opts, io.env, async (store) => {
            await store.migrate();
            return new ApiKeyService(store, systemClock).revoke(keyId);
          });
          if (!revoked) throw new CliError(`key ${keyId} not found`);
          io.stdout.write(`revoked ${keyId}\n`);
          return EXIT.ok;
        }),
      ),
  );
  return keys;
}

function parseOrg(raw: string): OrgId {
  try {
    return parseOrgId(raw);
  } catch (e) {
    throw new CliError(`--org: ${(e as Error).message}`, EXIT.usage);
  }
}

/** What may be shown of a key record: everything but the hash. */
function publicView(r: ApiKeyRecord): { key_id: string; org_id: string; label: string | null; created_at: string; revoked_at: string | null } {
  return {
    key_id: r.keyId,
    org_id: r.orgId,
    label: r.label,
    created_at: new Date(r.createdAt).toISOString(),
    revoked_at: r.revokedAt === null ? null : new Date(r.revokedAt).toISOString(),
  };
}
