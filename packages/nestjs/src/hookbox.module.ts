import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { HookboxService } from './hookbox.service.js';
import {
  checkOptions,
  HOOKBOX_OPTIONS,
  type HookboxModuleAsyncOptions,
  type HookboxModuleOptions,
  type HookboxModuleRootOptions,
} from './options.js';

/**
 * Provides `HookboxService`. Import `TypeOrmModule.forRoot(...)` as usual, then
 * `HookboxModule.forRoot({ isGlobal: true })` once in the root module (or
 * `forRootAsync` with a factory); feature modules inject `HookboxService`.
 */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module convention
export class HookboxModule {
  static forRoot(options: HookboxModuleRootOptions = {}): DynamicModule {
    const { isGlobal, ...rest } = options;
    return HookboxModule.build([{ provide: HOOKBOX_OPTIONS, useValue: checkOptions(rest) }], [], isGlobal);
  }

  static forRootAsync(options: HookboxModuleAsyncOptions): DynamicModule {
    const provider: Provider = {
      provide: HOOKBOX_OPTIONS,
      inject: options.inject ?? [],
      useFactory: async (...args: unknown[]) => checkOptions(await options.useFactory(...args)),
    };
    return HookboxModule.build([provider], options.imports ?? [], options.isGlobal);
  }

  private static build(providers: Provider[], imports: DynamicModule['imports'], isGlobal?: boolean): DynamicModule {
    return {
      module: HookboxModule,
      global: isGlobal === true,
      imports,
      providers: [...providers, HookboxService],
      exports: [HookboxService],
    };
  }
}

export type { HookboxModuleOptions };
