"""data"""

# Share of train/ held out for validation when there is no val/ folder. The split calibrates
# three numbers (the temperature, the prediction sets' quantile, the scope check's cut) and,
# unless --select best, picks no epoch: a tenth is enough, and on a few hundred photos every
# photo left in training counts (docs/recipe.md: "How many photos validation holds").
DEFAULT_VAL_FRACTION = 0.1
