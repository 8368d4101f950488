import { z } from 'zod';
import { badRequest } from './api-error.js';

/** Dropbox rejects unknown fields, so every argument schema is strict. */
export const listFolderArg = z.strictObject({
  path: z.string(),
  recursive: z.boolean().optional(),
  include_media_info: z.boolean().optional(),
  include_deleted: z.boolean().optional(),
  include_has_explicit_shared_members: z.boolean().optional(),
  include_mounted_folders: z.boolean().optional(),
  limit: z.number().int().min(1).max(2000).optional(),
  shared_link: z.unknown().optional(),
  include_property_groups: z.unknown().optional(),
  include_non_downloadable_files: z.boolean().optional(),
  include_restorable_info: z.boolean().optional(),
});

export const listFolderContinueArg = z.strictObject({ cursor: z.string().min(1) });

export const longpollArg = z.strictObject({
  cursor: z.string().min(1),
  timeout: z.number().int().min(30).max(480).optional(),
});

export const getMetadataArg = z.strictObject({
  path: z.string(),
  include_media_info: z.boolean().optional(),
  include_deleted: z.boolean().optional(),
  include_has_explicit_shared_members: z.boolean().optional(),
  include_property_groups: z.unknown().optional(),
});

export const downloadArg = z.strictObject({ path: z.string(), rev: z.string().optional() });

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field '${issue.keys[0]}'`;
  const where = issue.path.map(String).join('.');
  if (issue.code === 'invalid_type' && issue.input === undefined) return `missing required field '${where}'`;
  return `${where}: ${issue.message}`;
}

/**
 * Parses a JSON argument and validates it, failing the way Dropbox does: 400 with a plain-text body
 * such as `Error in call to API function "files/list_folder/continue": request body: unknown field 'x'`.
 */
export function parseArgument<T extends z.ZodType>(route: string, source: string, text: string, schema: T): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw badRequest(route, `${source}: could not decode input as JSON`);
  }
  const result = schema.safeParse(raw);
  if (!result.success) throw badRequest(route, `${source}: ${describeIssue(result.error.issues[0]!)}`);
  return result.data;
}
