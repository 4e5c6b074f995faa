/**
 * JSON text of values read from the database, at any depth. Shared by the CLI's printing
 * and the API's hosts (`hookbox serve`, the NestJS controller).
 */

/**
 * JSON.stringify(value, null, indent), without recursion: the database may hold payloads
 * nested deeper than JSON.stringify's call stack allows (written through SQL before the
 * depth limit, or by another writer), and every read path must print what it holds.
 * Follows JSON.stringify for what reads return: toJSON (Dates), undefined and functions
 * omitted from objects and written as null in arrays. Indentation stops growing after
 * MAX_INDENT_LEVEL levels, so the output stays proportional to the value (indenting
 * 5,000 levels would print 50 MB of spaces); it is the same JSON.
 */
export const MAX_INDENT_LEVEL = 32;

export function stringifyJson(value: unknown, indent = 0): string {
  const out: string[] = [];
  type Item = { v: unknown; key: string; level: number } | { text: string };
  const stack: Item[] = [{ v: value, key: '', level: 0 }];
  const pad = (level: number) => (indent > 0 ? `\n${' '.repeat(indent * Math.min(level, MAX_INDENT_LEVEL))}` : '');
  const colon = indent > 0 ? ': ' : ':';
  while (stack.length > 0) {
    const item = stack.pop() as Item;
    if ('text' in item) {
      out.push(item.text);
      continue;
    }
    let v = item.v;
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = (v as { toJSON(key: string): unknown }).toJSON(item.key);
    }
    if (v === null || typeof v !== 'object') {
      const text = JSON.stringify(v);
      out.push(text === undefined ? 'null' : text);
      continue;
    }
    const level = item.level;
    const parts: Item[] = [];
    if (Array.isArray(v)) {
      if (v.length === 0) {
        out.push('[]');
        continue;
      }
      parts.push({ text: '[' });
      v.forEach((child, i) => {
        parts.push({ text: `${i > 0 ? ',' : ''}${pad(level + 1)}` });
        const skip = child === undefined || typeof child === 'function' || typeof child === 'symbol';
        parts.push(skip ? { text: 'null' } : { v: child, key: String(i), level: level + 1 });
      });
      parts.push({ text: `${pad(level)}]` });
    } else {
      const entries = Object.entries(v).filter(
        ([, child]) => child !== undefined && typeof child !== 'function' && typeof child !== 'symbol',
      );
      if (entries.length === 0) {
        out.push('{}');
        continue;
      }
      parts.push({ text: '{' });
      entries.forEach(([key, child], i) => {
        parts.push({ text: `${i > 0 ? ',' : ''}${pad(level + 1)}${JSON.stringify(key)}${colon}` });
        parts.push({ v: child, key, level: level + 1 });
      });
      parts.push({ text: `${pad(level)}}` });
    }
    for (let i = parts.length - 1; i >= 0; i--) stack.push(parts[i] as Item);
  }
  return out.join('');
}
