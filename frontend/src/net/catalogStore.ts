/**
 * The indicator and strategy catalogues, fetched once per page and shared by
 * every chart's indicator menu and the Backtest panel. A failed fetch is
 * forgotten so the next caller tries again (the server may still be starting).
 */
import { IndicatorInfo, StrategyInfo, parseIndicatorCatalog, parseStrategyCatalog } from '../state/catalog';
import { api } from './api';

export class CatalogStore {
  private indicatorsP: Promise<IndicatorInfo[]> | null = null;
  private strategiesP: Promise<StrategyInfo[]> | null = null;

  indicators(): Promise<IndicatorInfo[]> {
    this.indicatorsP ??= api.indicators().then(parseIndicatorCatalog);
    this.indicatorsP.catch(() => (this.indicatorsP = null));
    return this.indicatorsP;
  }

  strategies(): Promise<StrategyInfo[]> {
    this.strategiesP ??= api.strategies().then(parseStrategyCatalog);
    this.strategiesP.catch(() => (this.strategiesP = null));
    return this.strategiesP;
  }
}
