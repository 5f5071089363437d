/** Shape of fixtures/lora.json (written by tools/fixtures/strategies/make_fixtures.py). */
export interface PeftExpertFixture {
  rank: number;
  alpha: number;
  useRslora: boolean;
  A: number[];
  aShape: [number, number];
  B: number[];
  bShape: [number, number];
  peftScaling: number;
  peftDelta: number[];
}

export interface LoraFixture {
  versions: { torch: string; peft: string };
  experts: Record<string, Record<string, PeftExpertFixture>>;
  fanInFanOut: Omit<PeftExpertFixture, "useRslora" | "peftScaling"> & {
    baseWeightShape: number[];
    peftDeltaShape: number[];
  };
  lowRank: {
    B: number[];
    A: number[];
    out: number;
    in: number;
    rank: number;
    singularValues: number[];
    dense: number[];
  };
  angles: { rows: number; X: number[]; p: number; Y: number[]; q: number; cosines: number[] };
}
