/**
 * The tenants' webhook REST API (subscriptions, deliveries, retry, replay, the event
 * catalog…) mounted in a Nest app under its own auth. The handlers are `@hookbox/outbox/api`'s
 * framework-free ones (the same `hookbox serve` runs); this controller only turns the
 * Express request into an `ApiRequest` with the tenant the app's resolver returns, and
 * writes the `ApiResponse` back.
 */
import type { Executor } from '@hookbox/outbox';
import { type Api, type ApiRequest, type CatalogEntry, createApi, stringifyJson } from '@hookbox/outbox/api';
import { All, Controller, type DynamicModule, Inject, Injectable, Module, Req, Res, type Type } from '@nestjs/common';
import { HookboxService } from './hookbox.service.js';

/** Injection token of the `Api` (its `openapi` document, its route table). */
export const HOOKBOX_API = Symbol('HOOKBOX_API');

/** The parts of an Express request the controller reads (and your resolver may). */
export interface HookboxApiRequest {
  method: string;
  params: Record<string, string | string[]>;
  query: Record<string, unknown>;
  body?: unknown;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: what your auth put there (req.user…)
  [key: string]: any;
}

interface HookboxApiResponse {
  status(code: number): HookboxApiResponse;
  type(contentType: string): HookboxApiResponse;
  json(body: unknown): void;
  send(body: string): void;
  end(): void;
}

export interface HookboxApiOptions {
  /**
   * The tenant of an authenticated request, e.g. `(req) => req.user?.tenantId`. Return
   * null/undefined to answer 401. Take it from your auth, never from the URL alone.
   */
  resolveTenant: (req: HookboxApiRequest) => string | null | undefined | Promise<string | null | undefined>;
  /** Where the API is mounted. Default `webhooks` (routes `/webhooks/v1/...`, `/webhooks/openapi.json`). */
  path?: string;
  /** Event types offered to tenants, with their JSON Schemas (`GET v1/event-types`). Default none. */
  catalog?: readonly CatalogEntry[];
  /** Told of unexpected errors (answered as a bare 500). */
  onError?: (err: unknown) => void;
}

const OPTIONS = Symbol('HOOKBOX_API_OPTIONS');

@Injectable()
class ApiHolder {
  private api: Api | undefined;
  constructor(
    @Inject(OPTIONS) private readonly options: HookboxApiOptions,
    @Inject(HookboxService) private readonly hookbox: HookboxService,
  ) {}

  get(): Api {
    this.api ??= createApi({
      // Resolved per query: the DataSource may not exist yet when the API is created.
      // Marked as a DataSource so hookbox reads TypeORM's [rows, rowCount] answers right.
      db: {
        '@instanceof': Symbol.for('DataSource'),
        query: (text: string, values?: unknown[]) => this.hookbox.dataSource.query(text, values),
      } as Executor,
      catalog: this.options.catalog ?? [],
      ...(this.options.onError ? { onError: this.options.onError } : {}),
    });
    return this.api;
  }
}

function makeController(path: string): Type<unknown> {
  @Controller(path)
  class HookboxApiController {
    constructor(
      @Inject(OPTIONS) readonly options: HookboxApiOptions,
      @Inject(ApiHolder) readonly holder: ApiHolder,
    ) {}

    @All('*path')
    async handle(@Req() req: HookboxApiRequest, @Res() res: HookboxApiResponse): Promise<void> {
      const raw = req.params.path;
      const sub = `/${Array.isArray(raw) ? raw.join('/') : String(raw ?? '')}`;
      const api = this.holder.get();
      const request: ApiRequest = {
        method: req.method,
        path: sub,
        query: req.query as ApiRequest['query'],
        body: req.body,
      };
      if (sub !== '/openapi.json') {
        const tenantId = await this.options.resolveTenant(req);
        if (typeof tenantId !== 'string' || tenantId === '') {
          res.status(401).json({ error: { code: 'unauthorized', message: 'no tenant for this request' } });
          return;
        }
        request.auth = { tenantId };
      }
      const answer = await api.handle(request);
      if (answer.body === undefined) res.status(answer.status).end();
      // Not res.json (JSON.stringify): an event payload may nest deeper than its call stack.
      else res.status(answer.status).type('application/json').send(stringifyJson(answer.body));
    }
  }
  return HookboxApiController;
}

/**
 * `HookboxApiModule.register({ resolveTenant: (req) => req.user?.tenantId })` mounts the
 * API at `/webhooks`. Needs `HookboxModule` (global) for the DataSource.
 */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module convention
export class HookboxApiModule {
  static register(options: HookboxApiOptions): DynamicModule {
    if (typeof options?.resolveTenant !== 'function') {
      throw new TypeError('HookboxApiModule options.resolveTenant: must be a function (req) => tenantId');
    }
    const path = (options.path ?? 'webhooks').replace(/^\/+|\/+$/g, '');
    return {
      module: HookboxApiModule,
      controllers: [makeController(path)],
      providers: [
        { provide: OPTIONS, useValue: options },
        ApiHolder,
        { provide: HOOKBOX_API, inject: [ApiHolder], useFactory: (h: ApiHolder) => h.get() },
      ],
      exports: [HOOKBOX_API],
    };
  }
}
