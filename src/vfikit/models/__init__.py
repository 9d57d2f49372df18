"""Model zoo: SepConv, DSepConv, EDSC, AdaCoF, compressed AdaCoF, CDFI and classical baselines."""
