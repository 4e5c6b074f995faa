/** The CRM's tables (TypeORM entities). Every row belongs to one tenant. */
import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { Category, MessageKind, Status } from './events.js';

@Entity('contacts')
@Index(['tenantId', 'phone'], { unique: true })
export class Contact {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('text') phone!: string;
  @Column('text', { nullable: true }) name!: string | null;
  @Column('text', { nullable: true }) email!: string | null;
  @Column('text', { array: true, default: '{}' }) tags!: string[];
  @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}

@Entity('conversations')
export class Conversation {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('uuid') contactId!: string;
  @Column('text', { default: 'open' }) status!: Status;
  @Column('text', { array: true, default: '{}' }) labels!: string[];
  @Column('text', { nullable: true }) assigneeId!: string | null;
  @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}

@Entity('messages')
export class Message {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('uuid') conversationId!: string;
  @Column('uuid') contactId!: string;
  @Column('text') direction!: 'inbound' | 'outbound';
  @Column('text') kind!: MessageKind;
  // WhatsApp's limit; a longer text fails the insert (and rolls back the transaction).
  @Column('varchar', { length: 4096, nullable: true }) text!: string | null;
  @Column('text', { default: 'accepted' }) status!: 'accepted' | 'sent' | 'delivered' | 'read' | 'failed';
  @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}

@Entity('campaigns')
export class Campaign {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('text') name!: string;
  @Column('int') audienceSize!: number;
  @Column('text', { default: 'running' }) status!: 'running' | 'completed' | 'failed';
}

@Entity('flow_executions')
export class FlowExecution {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('uuid') flowId!: string;
  @Column('uuid') contactId!: string;
  @Column('text', { default: 'running' }) status!: 'running' | 'completed' | 'failed';
  @CreateDateColumn({ type: 'timestamptz' }) startedAt!: Date;
}

@Entity('automation_runs')
export class AutomationRun {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  @Column('uuid') automationId!: string;
  @Column('text', { default: 'running' }) status!: 'running' | 'completed';
}

@Entity('templates')
export class Template {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') tenantId!: string;
  /** The id Meta gives the template. */
  @Column('text') externalId!: string;
  @Column('text') name!: string;
  @Column('text') language!: string;
  @Column('text') category!: Category;
  @Column('text', { default: 'pending' }) status!: 'pending' | 'approved' | 'rejected';
}

export const ENTITIES = [Contact, Conversation, Message, Campaign, FlowExecution, AutomationRun, Template];
