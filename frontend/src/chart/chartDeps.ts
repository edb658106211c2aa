/** What a chart needs from the page (dashboard.ts builds it): the connection, the stores, and whom to tell. */
import type { SymbolDrawings } from '../drawings/symbolDrawings';
import type { CatalogStore } from '../net/catalogStore';
import type { Connection } from '../net/connection';
import type { StreamHub } from '../net/streams';
import type { ChartConfig } from '../state/layout';
import type { MarketState } from '../state/marketSession';
import type { KeyValueStore } from '../state/storage';
import type { SymbolMatch } from '../state/symbolSearch';
import type { ThemeState } from '../theme';

export interface ChartDeps {
  conn: Connection;
  /** Indicator and signal streams on the same socket. */
  streams: StreamHub;
  catalog: CatalogStore;
  store: KeyValueStore;
  /** Drawings per symbol, shared by every chart of the symbol. */
  drawings: SymbolDrawings;
  theme: ThemeState;
  /** The ticker meant by what was typed (`xrp` -> XRPUSDT), or why there is none. */
  resolveSymbol(input: string): Promise<SymbolMatch>;
  onConfigChange(cfg: ChartConfig): void;
  onRemove(id: string): void;
  onDuplicate(id: string): void;
  /** Counts applied live updates (debug hook / performance test). */
  countUpdate(): void;
  /** The chart's health changed (the connection dot sums them up). */
  onHealthChange(): void;
  /** Whether the symbol's exchange is open now; undefined for markets open around the clock. */
  marketState?(symbol: string): MarketState | null | undefined;
}
