import { BadRequestException, createParamDecorator, type ExecutionContext } from '@nestjs/common';

/**
 * The tenant of a request. This example reads the `x-tenant-id` header; a real app takes
 * it from its authenticated user (`req.user.tenantId`), never from the URL alone.
 */
export const TenantId = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const value = ctx.switchToHttp().getRequest<{ headers: Record<string, unknown> }>().headers['x-tenant-id'];
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
    throw new BadRequestException('x-tenant-id: required, 1-64 characters of A-Z a-z 0-9 _ -');
  }
  return value;
});

export const now = () => new Date().toISOString();
