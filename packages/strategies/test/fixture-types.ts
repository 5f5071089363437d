/** Shape of fixtures/merges.json (written by tools/fixtures/strategies/make_fixtures.py). */
export interface ExpertFactors {
  rank: number;
  alpha: number;
  useRslora: boolean;
  A: number[];
  aShape: [number, number];
  B: number[];
  bShape: [number, number];
}

export interface MergeCase {
  name: string;
  strategy: string;
  hyper: Record<string, unknown>;
  weights: number[] | null;
  reference: string;
  source: "peft" | "torch";
  note: string;
  expected: Record<string, number[]>;
  masks?: Record<string, Array<number[] | null>>;
}

export interface MergesFixture {
  versions: { torch: string; peft: string };
  experts: string[];
  modules: Record<string, { outFeatures: number; inFeatures: number }>;
  factors: Record<string, Record<string, ExpertFactors>>;
  cases: MergeCase[];
}
