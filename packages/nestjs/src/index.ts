/**
 * @hookbox/nestjs — hookbox for NestJS + TypeORM: `HookboxModule` and an injectable
 * `HookboxService` that writes webhook events in your transaction.
 */
export { HookboxModule } from './hookbox.module.js';
export type { HookboxEvent, TriggerOptions } from './hookbox.service.js';
export { HookboxService } from './hookbox.service.js';
export type { HookboxApiOptions, HookboxApiRequest } from './hookbox-api.module.js';
export { HOOKBOX_API, HookboxApiModule } from './hookbox-api.module.js';
export type { HookboxModuleAsyncOptions, HookboxModuleOptions, HookboxModuleRootOptions } from './options.js';
export { HOOKBOX_OPTIONS } from './options.js';
