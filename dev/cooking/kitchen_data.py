"""Techniques, substitutions and question phrasings for the cooking corpus (written for tui-gen).

Question phrasings come in two pools per kind: TRAIN phrasings appear in the training corpus,
HELDOUT phrasings never do. The evaluation asks held-out dishes with held-out phrasings, so a
good score means the model generalises to new wordings and new dish names, not that it
remembers a line it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    """A way of cooking one ingredient ("roast cauliflower"), answered as a small recipe.

    Steps use the dish_data mini-syntax ("cat,cat|" limits a step to ingredient categories);
    `{main}` is the ingredient noun and `{time}` its time from `times` (by ingredient key, then
    category, then "*").
    """

    key: str
    verb: str
    title: str
    ingredients: tuple[str, ...]
    extra: tuple[tuple[str, str], ...]
    steps: tuple[str, ...]
    times: dict[str, str]
    tips: tuple[str, ...]
    form: str = "*"


def _t(
    key: str,
    verb: str,
    title: str,
    ingredients: str,
    extra: list[tuple[str, str]],
    steps: list[str],
    times: dict[str, str],
    tips: list[str],
    form: str = "*",
) -> Technique:
    return Technique(
        key,
        verb,
        title,
        tuple(ingredients.split()),
        tuple(extra),
        tuple(steps),
        times,
        tuple(tips),
        form,
    )


TECHNIQUES: dict[str, Technique] = {
    t.key: t
    for t in [
        _t(
            "roast",
            "roast",
            "Roasted {N}",
            "cauliflower broccoli carrot parsnip squash sweet_potato potato beetroot fennel "
            "red_onion pepper courgette aubergine asparagus green_bean celeriac pumpkin",
            [("2 tbsp", "olive oil"), ("", "salt and black pepper")],
            [
                "Heat the oven to 220°C (425°F).",
                "Cut the {main} into even, bite-sized pieces.",
                "Toss with the oil and a good pinch of salt and pepper.",
                "Spread out in a single layer on a large tray.",
                "Roast for {time}, turning halfway, until golden at the edges.",
            ],
            {
                "asparagus": "12 minutes",
                "green_bean": "15 minutes",
                "courgette": "20 minutes",
                "pepper": "25 minutes",
                "broccoli": "20 minutes",
                "potato": "45 minutes",
                "beetroot": "45 minutes",
                "*": "35 minutes",
            },
            [
                "Crowded trays steam; use two if you need to.",
                "Dry the vegetables well before oiling them.",
            ],
        ),
        _t(
            "blanch",
            "blanch",
            "Blanched {N}",
            "green_bean broccoli asparagus pea kale spinach pak_choi cabbage",
            [("1 tbsp", "salt"), ("1 bowl", "iced water")],
            [
                "Bring a large pan of water to a rolling boil and add the salt.",
                "Have a bowl of iced water ready next to the hob.",
                "Drop in the {main} and cook for {time}, until bright and just tender.",
                "Lift straight into the iced water to stop the cooking.",
                "Drain well and pat dry.",
            ],
            {"spinach": "30 seconds", "kale": "1 minute", "pea": "1 minute", "*": "2 minutes"},
            [
                "Blanched vegetables keep their colour for salads and stir-fries.",
                "Blanch in small batches so the water keeps boiling.",
            ],
        ),
        _t(
            "steam",
            "steam",
            "Steamed {N}",
            "broccoli carrot green_bean asparagus pak_choi salmon cod potato cauliflower "
            "sweet_potato",
            [("1 pinch", "salt"), ("1 tsp", "butter or olive oil")],
            [
                "Bring 3 cm of water to the boil in a pan that fits your steamer.",
                "veg|Cut the {main} into even pieces.",
                "fish|Season the {main} and lay it on a piece of baking paper.",
                "Put the {main} in the steamer, cover and steam for {time}.",
                "Finish with the butter or oil and a pinch of salt.",
            ],
            {
                "potato": "20 minutes",
                "sweet_potato": "15 minutes",
                "fish": "8 minutes",
                "carrot": "8 minutes",
                "*": "5 minutes",
            },
            [
                "Do not let the water touch the steamer basket.",
                "Steaming keeps more flavour in than boiling.",
            ],
        ),
        _t(
            "poach",
            "poach",
            "Poached {N}",
            "egg chicken salmon cod haddock",
            [("1 tbsp", "white wine vinegar"), ("1", "bay leaf"), ("", "salt and black pepper")],
            [
                "egg|Bring a deep pan of water to a bare simmer and add the vinegar.",
                "egg|Crack each egg into a cup, stir the water and slide the egg into the middle.",
                "poultry,fish|Put the {main} in a pan with the bay leaf and cover with cold water "
                "by 2 cm.",
                "poultry,fish|Bring to a bare simmer, with only a few bubbles rising.",
                "Cook for {time}.",
                "poultry|Check the thickest part reads 75°C (165°F), then rest for 5 minutes.",
                "Lift out with a slotted spoon, drain and season.",
            ],
            {"egg": "3 minutes for a runny yolk", "chicken": "15 minutes", "*": "8 minutes"},
            ["The water should shiver, not boil.", "Very fresh eggs hold their shape best."],
        ),
        _t(
            "caramelise",
            "caramelise",
            "Caramelised {N}",
            "onion red_onion",
            [("2 tbsp", "butter"), ("1 tbsp", "olive oil"), ("1 pinch", "salt")],
            [
                "Melt the butter with the oil in a wide pan over a medium-low heat.",
                "Add the {main} and the salt and stir to coat.",
                "Cook for {time}, stirring every few minutes, until deep golden and jammy.",
                "If they catch, add a splash of water and scrape the pan.",
            ],
            {"*": "40 minutes"},
            [
                "Do not rush them with high heat: they burn before they sweeten.",
                "They keep for 5 days in the fridge.",
            ],
        ),
        _t(
            "toast",
            "toast",
            "Toasted {N}",
            "almond pine_nut cashew sesame pumpkin_seed cumin_seed coriander_seed walnut "
            "hazelnut pecan",
            [],
            [
                "Put the {main} in a dry frying pan over a medium heat.",
                "Toast for {time}, shaking the pan often.",
                "Take them off as soon as they smell nutty and turn golden.",
                "Tip onto a plate straight away so they stop cooking.",
            ],
            {"spice": "1 minute", "sesame": "2 minutes", "pine_nut": "3 minutes", "*": "4 minutes"},
            [
                "Stay with the pan: they go from golden to burnt in seconds.",
                "Toast whole spices, then grind them, for the most flavour.",
            ],
        ),
        _t(
            "sear",
            "sear",
            "Pan-Seared {N}",
            "beef lamb pork duck salmon tuna scallop tofu halloumi",
            [("1 tbsp", "vegetable oil"), ("1 tbsp", "butter"), ("", "salt and black pepper")],
            [
                "Pat the {main} dry with kitchen paper and season well.",
                "Heat the oil in a heavy pan over a high heat until it shimmers.",
                "Lay the {main} in the pan, away from you, and leave it alone for {time}.",
                "Turn, add the butter and baste for the same time on the other side.",
                "meat,poultry|Rest for 5 minutes before slicing.",
            ],
            {
                "scallop": "90 seconds",
                "tuna": "1 minute",
                "fish": "3 minutes",
                "tofu": "3 minutes",
                "duck": "6 minutes",
                "*": "3 minutes",
            },
            [
                "A dry surface and a hot pan give the best crust.",
                "Do not move it until it releases from the pan by itself.",
            ],
            form="quick",
        ),
        _t(
            "pickle",
            "pickle",
            "Quick-Pickled {N}",
            "red_onion cucumber carrot radish beetroot fennel cabbage",
            [
                ("150 ml", "cider vinegar"),
                ("150 ml", "water"),
                ("1 tbsp", "sugar"),
                ("1 tsp", "salt"),
            ],
            [
                "Slice the {main} thinly and pack into a clean jar.",
                "Warm the vinegar, water, sugar and salt until dissolved.",
                "Pour over the {main} to cover.",
                "Leave for {time} before eating.",
            ],
            {"beetroot": "2 hours", "carrot": "1 hour", "*": "30 minutes"},
            [
                "They keep for 2 weeks in the fridge.",
                "Add a few peppercorns or a bay leaf to the jar for extra flavour.",
            ],
        ),
        _t(
            "grill",
            "grill",
            "Grilled {N}",
            "halloumi courgette aubergine pepper mackerel chicken prawn asparagus sweetcorn "
            "pineapple peach",
            [("1 tbsp", "olive oil"), ("", "salt and black pepper")],
            [
                "Heat a griddle pan or grill until very hot.",
                "Brush the {main} with the oil and season.",
                "Grill for {time}, turning once, until charred lines appear.",
                "poultry|Check the thickest part reads 75°C (165°F).",
                "Serve straight away.",
            ],
            {
                "halloumi": "2 minutes a side",
                "prawn": "2 minutes a side",
                "poultry": "6 minutes a side",
                "fish": "3 minutes a side",
                "*": "4 minutes a side",
            },
            [
                "Oil the food, not the pan, so it does not smoke.",
                "Press down gently for even char lines.",
            ],
        ),
        _t(
            "mash",
            "mash",
            "Mashed {N}",
            "potato sweet_potato celeriac parsnip cauliflower squash carrot",
            [("50 g", "butter"), ("100 ml", "warm milk"), ("", "salt and black pepper")],
            [
                "Cut the {main} into even chunks and put in a pan of cold salted water.",
                "Bring to the boil and simmer for {time} until very tender.",
                "Drain well and let it steam dry for 2 minutes.",
                "Mash with the butter and warm milk, then season to taste.",
            ],
            {"potato": "20 minutes", "cauliflower": "10 minutes", "*": "15 minutes"},
            [
                "Warm milk keeps mash smooth; cold milk makes it gluey.",
                "Never use a blender on potatoes.",
            ],
        ),
        _t(
            "braise",
            "braise",
            "Braised {N}",
            "cabbage leek fennel red_onion",
            [("30 g", "butter"), ("200 ml", "stock"), ("", "salt and black pepper")],
            [
                "Melt the butter in a wide pan with a lid.",
                "Add the {main}, cut into wedges or halves, and brown lightly for 5 minutes.",
                "Pour in the stock, cover and cook gently for {time}.",
                "Uncover and let the liquid reduce to a glaze. Season.",
            ],
            {"*": "25 minutes"},
            ["A splash of vinegar at the end sharpens the flavour."],
        ),
        _t(
            "cook_grain",
            "cook",
            "Perfect {N}",
            "basmati brown_rice quinoa couscous bulgur barley polenta",
            [("", "water (see step 2)"), ("1/2 tsp", "salt")],
            [
                "Rinse the {main} in a sieve (not needed for couscous or polenta).",
                "Use {time}.",
                "Bring the water and salt to the boil, add the {main}, cover and cook on a low "
                "heat until the water is absorbed.",
                "Take off the heat and leave covered for 5 minutes, then fluff with a fork.",
            ],
            {
                "basmati": "1.5 times its volume of water and cook for 10 minutes",
                "brown_rice": "2 times its volume of water and cook for 30 minutes",
                "quinoa": "2 times its volume of water and cook for 15 minutes",
                "couscous": "the same volume of boiling water and leave off the heat for 5 minutes",
                "bulgur": "2 times its volume of water and cook for 12 minutes",
                "barley": "3 times its volume of water and cook for 35 minutes",
                "polenta": "4 times its volume of water and whisk for 5 minutes",
                "*": "2 times its volume of water and cook for 15 minutes",
            },
            [
                "Measure by volume with a mug: it is quicker than weighing.",
                "Cool leftover grains quickly and use within a day.",
            ],
        ),
        _t(
            "scramble",
            "scramble",
            "Soft Scrambled {N}",
            "egg",
            [("1 tbsp", "butter"), ("1 tbsp", "milk"), ("", "salt and black pepper")],
            [
                "Beat the {main} with the milk and a pinch of salt.",
                "Melt the butter in a non-stick pan over a low heat.",
                "Add the {main} and stir slowly with a spatula for {time}.",
                "Take off the heat while still slightly wet; they finish cooking on the plate.",
            ],
            {"*": "3 to 4 minutes"},
            ["Low heat and patience give soft, creamy curds."],
        ),
        _t(
            "boil",
            "boil",
            "Boiled {N}",
            "egg potato",
            [("1 pinch", "salt")],
            [
                "Bring a pan of water to the boil.",
                "egg|Lower the {main} in gently with a spoon.",
                "veg|Add the {main} and the salt.",
                "Cook for {time}.",
                "egg|Cool under cold running water for 1 minute before peeling.",
                "veg|Drain and serve hot.",
            ],
            {"egg": "6 minutes for jammy yolks or 9 minutes for firm", "*": "15 minutes"},
            ["Eggs straight from the fridge need an extra 30 seconds."],
        ),
    ]
}


@dataclass(frozen=True)
class Substitution:
    """What to use when `missing` is not in the cupboard.

    `lines` and `steps` make the stand-alone answer; `inline` is the replacement text for the
    ingredient line when the question is about a specific dish ("Can I make X without Y?").
    """

    key: str
    missing: str
    title: str
    lines: tuple[tuple[str, str], ...]
    steps: tuple[str, ...]
    tip: str
    inline: str
    why: str


def _s(
    key: str,
    missing: str,
    title: str,
    lines: list[tuple[str, str]],
    steps: list[str],
    tip: str,
    inline: str,
    why: str,
) -> Substitution:
    return Substitution(key, missing, title, tuple(lines), tuple(steps), tip, inline, why)


SUBSTITUTIONS: dict[str, Substitution] = {
    s.key: s
    for s in [
        _s(
            "buttermilk",
            "buttermilk",
            "Quick Buttermilk",
            [("250 ml", "milk"), ("1 tbsp", "lemon juice")],
            [
                "Stir the lemon juice into the milk.",
                "Leave for 10 minutes until it thickens slightly.",
                "Use it exactly as you would buttermilk.",
            ],
            "It works in pancakes, scones and marinades.",
            "milk soured with lemon juice",
            "the acid does the same job",
        ),
        _s(
            "self_raising",
            "self-raising flour",
            "Homemade Self-Raising Flour",
            [("150 g", "plain flour"), ("2 tsp", "baking powder")],
            [
                "Whisk the flour and baking powder together.",
                "Sift once so it is even.",
                "Use it weight for weight in place of self-raising flour.",
            ],
            "Mix only what you need: baking powder loses strength over time.",
            "plain flour plus 2 tsp baking powder",
            "it gives the same rise",
        ),
        _s(
            "egg_baking",
            "eggs",
            "Flax Egg",
            [("1 tbsp", "ground flaxseed"), ("3 tbsp", "water")],
            [
                "Stir the flaxseed into the water.",
                "Leave for 5 minutes until gel-like.",
                "Use in place of 1 egg in muffins, pancakes and cookies.",
            ],
            "Flax eggs bind well but do not whip, so skip them for meringues.",
            "flax eggs (1 tbsp ground flaxseed and 3 tbsp water each)",
            "they bind the mixture the way egg does",
        ),
        _s(
            "cream",
            "double cream",
            "Cream Swap",
            [("200 ml", "whole milk"), ("50 g", "butter, melted")],
            [
                "Warm the milk gently.",
                "Whisk in the melted butter until combined.",
                "Use it in sauces and soups (it will not whip).",
            ],
            "Crème fraîche is an even easier swap in hot sauces.",
            "crème fraîche",
            "it is rich and does not split when heated",
        ),
        _s(
            "soured_cream",
            "soured cream",
            "Yoghurt Soured Cream",
            [("150 g", "Greek yoghurt"), ("1 tsp", "lemon juice"), ("1 pinch", "salt")],
            ["Stir the lemon juice and salt into the yoghurt.", "Chill until needed."],
            "Add it off the heat so it does not split.",
            "Greek yoghurt",
            "it has the same tang and thickness",
        ),
        _s(
            "brown_sugar",
            "brown sugar",
            "Homemade Brown Sugar",
            [("200 g", "caster sugar"), ("1 tbsp", "black treacle")],
            [
                "Put the sugar in a bowl and add the treacle.",
                "Rub together with your fingertips until evenly coloured.",
            ],
            "Add another spoonful of treacle for dark brown sugar.",
            "caster sugar with 1 tbsp treacle",
            "the treacle gives the same toffee flavour",
        ),
        _s(
            "breadcrumbs",
            "breadcrumbs",
            "Oat Crumbs",
            [("50 g", "rolled oats"), ("1 pinch", "salt")],
            ["Blitz the oats in a food processor until fine.", "Use them like breadcrumbs."],
            "Crushed crackers work too.",
            "blitzed rolled oats",
            "they bind and crisp the same way",
        ),
        _s(
            "white_wine",
            "white wine",
            "Wine-Free Deglazing Liquid",
            [("100 ml", "stock"), ("1 tsp", "white wine vinegar")],
            ["Mix the stock and vinegar.", "Add it where the recipe adds wine."],
            "A squeeze of lemon does the same job as the vinegar.",
            "stock with 1 tsp white wine vinegar",
            "it adds the acidity without alcohol",
        ),
        _s(
            "fresh_herbs",
            "fresh herbs",
            "Using Dried Herbs",
            [("1 tsp", "dried herbs for each 1 tbsp fresh")],
            [
                "Use a third of the amount of fresh herbs.",
                "Add dried herbs early in cooking so they soften.",
                "Add a squeeze of lemon at the end for freshness.",
            ],
            "Dried oregano and thyme stand in well; dried parsley and basil less so.",
            "dried herbs (a third of the amount)",
            "they are stronger, so use less",
        ),
        _s(
            "butter_baking",
            "butter",
            "Oil Instead of Butter",
            [("80 ml", "vegetable oil for every 100 g butter")],
            [
                "Use a mild oil.",
                "Replace melted butter with oil measure for measure.",
                "For creamed cakes, expect a denser, moister crumb.",
            ],
            "Oil cakes stay moist for longer.",
            "vegetable oil (80 ml for every 100 g)",
            "it keeps the bake moist",
        ),
        _s(
            "soy_sauce",
            "soy sauce",
            "Soy Sauce Swap",
            [("2 tbsp", "tamari"), ("1 tsp", "water")],
            [
                "Use tamari in the same amount as soy sauce.",
                "For a soy-free version, thin 1 tsp miso with 2 tbsp water.",
            ],
            "Tamari is usually gluten-free; check the label.",
            "tamari",
            "it is just as salty and savoury",
        ),
        _s(
            "honey",
            "honey",
            "Honey Swap",
            [("2 tbsp", "maple syrup")],
            ["Use maple syrup in the same amount as honey.", "Golden syrup works too in baking."],
            "Maple syrup keeps the recipe vegan.",
            "maple syrup",
            "it sweetens the same way",
        ),
        _s(
            "parmesan",
            "parmesan",
            "Parmesan Swap",
            [("30 g", "pecorino or a vegetarian hard cheese, grated")],
            ["Grate the cheese finely.", "Use it in the same amount as parmesan."],
            "For a dairy-free finish, use 2 tbsp nutritional yeast with a pinch of salt.",
            "pecorino or a vegetarian hard cheese",
            "it brings the same salty depth",
        ),
        _s(
            "fish_sauce",
            "fish sauce",
            "Fish Sauce Swap",
            [("1 tbsp", "soy sauce"), ("1 tsp", "lime juice")],
            ["Mix the soy sauce and lime juice.", "Use it where the recipe uses fish sauce."],
            "A little miso adds extra depth.",
            "soy sauce with a squeeze of lime",
            "it gives the salty, savoury note",
        ),
        _s(
            "rice_wine",
            "rice wine",
            "Rice Wine Swap",
            [("1 tbsp", "dry sherry")],
            ["Use dry sherry in the same amount."],
            "Leave it out entirely if you must; add a pinch of sugar instead.",
            "dry sherry",
            "it has a similar nutty flavour",
        ),
        _s(
            "milk",
            "milk",
            "Dairy-Free Milk",
            [("250 ml", "oat milk")],
            ["Use unsweetened oat or soya milk in the same amount."],
            "Avoid sweetened or vanilla milks in savoury dishes.",
            "unsweetened oat milk",
            "it behaves like milk in most recipes",
        ),
        _s(
            "caster_sugar",
            "caster sugar",
            "Homemade Caster Sugar",
            [("200 g", "granulated sugar")],
            [
                "Blitz the sugar in a food processor for 30 seconds.",
                "Let the dust settle before opening the lid.",
            ],
            "Unblitzed granulated sugar works too, with a slightly coarser crumb.",
            "granulated sugar",
            "it is the same sugar, just coarser",
        ),
        _s(
            "tinned_tomatoes",
            "chopped tomatoes",
            "Tomato Swap",
            [("400 g", "passata")],
            [
                "Use passata in the same amount as chopped tomatoes.",
                "Or chop 6 ripe fresh tomatoes and cook them down for 10 minutes.",
            ],
            "Passata gives a smoother sauce.",
            "passata",
            "it is the same tomatoes, sieved",
        ),
        _s(
            "gruyere",
            "gruyère",
            "Cheese Swap",
            [("60 g", "mature cheddar, grated")],
            ["Use a strong cheddar in the same amount."],
            "Comté and emmental also work.",
            "mature cheddar",
            "it melts well and has plenty of flavour",
        ),
        _s(
            "yoghurt",
            "plain yoghurt",
            "Yoghurt Swap",
            [("150 g", "soured cream or coconut yoghurt")],
            ["Use the swap in the same amount."],
            "Coconut yoghurt keeps it dairy-free.",
            "coconut yoghurt",
            "it has the same tang",
        ),
        _s(
            "baking_powder",
            "baking powder",
            "Homemade Baking Powder",
            [("1/4 tsp", "bicarbonate of soda"), ("1/2 tsp", "cream of tartar")],
            ["Mix both together: this equals 1 tsp baking powder.", "Use it straight away."],
            "Bicarbonate alone needs an acid such as yoghurt.",
            "1/4 tsp bicarbonate of soda with 1/2 tsp cream of tartar per tsp",
            "together they give the same lift",
        ),
    ]
}

# --- question phrasings: {dish} is the dish name, {noun}/{verb} for techniques ----------------
RECIPE_TRAIN = (
    "How do I make {dish}?",
    "Can you give me a recipe for {dish}?",
    "Recipe for {dish} please",
    "What's a good recipe for {dish}?",
    "Teach me to make {dish}.",
    "{dish} recipe?",
    "How would you cook {dish}?",
    "Walk me through making {dish}.",
    "I want to cook {dish} tonight. How do I do it?",
    "Give me a simple {dish} recipe.",
    "How do you make {dish}?",
    "Write a recipe for {dish}.",
    "Any idea how to make {dish} at home?",
    "I'd love a recipe for {dish}.",
    "What do I need to make {dish}?",
    "Can you show me how to make {dish}?",
    "how to make {dish}",
    "Need a recipe for {dish}",
    "Please give me your {dish} recipe.",
    "I've never made {dish} before. Where do I start?",
    "What's the method for {dish}?",
    "Could you write out a recipe for {dish}?",
    "Recipe: {dish}",
    "I'd like to try {dish} this weekend. Recipe?",
    "Give me the steps for {dish}.",
    "What is the best way to make {dish}?",
    "I fancy {dish}. How do I make it?",
    "Can I have a recipe for {dish}, with quantities?",
    "Make me {dish}.",
    "Step by step, how do I cook {dish}?",
    "Easy {dish} recipe?",
    "What ingredients go into {dish}, and how do I cook it?",
)
RECIPE_HELDOUT = (
    "Could you share how you would prepare {dish}?",
    "I'm craving {dish}. What's the plan?",
    "Tell me how to cook {dish}",
    "Looking for a {dish} recipe",
    "Help! Friends are coming over and I want to serve {dish}. Recipe?",
    "{dish}: ingredients and method, please.",
    "What would I need for {dish}, and what then?",
    "My kids want {dish} for dinner. How do I make it?",
)
TIME_TRAIN = (
    "How long does {dish} take?",
    "How long do I cook {dish} for?",
    "How much time do I need for {dish}?",
    "How long will {dish} take to make?",
    "Is {dish} quick to make?",
    "How long does it take to make {dish}?",
    "What's the cooking time for {dish}?",
)
TIME_HELDOUT = (
    "Roughly how many minutes does {dish} need?",
    "Can I make {dish} in under an hour?",
)
TEMP_TRAIN = (
    "What temperature do I cook {dish} at?",
    "What oven temperature for {dish}?",
    "How hot should the oven be for {dish}?",
    "What heat should I use for {dish}?",
    "At what temperature should I make {dish}?",
)
TEMP_HELDOUT = (
    "Which temperature is right for {dish}?",
    "What should I set the oven to for {dish}?",
)
SUBST_DISH_TRAIN = (
    "Can I make {dish} without {missing}?",
    "I don't have any {missing}. Can I still make {dish}?",
    "What can I use instead of {missing} in {dish}?",
    "Is there a substitute for {missing} in {dish}?",
    "I'm out of {missing} but want to make {dish}. Help?",
)
SUBST_DISH_HELDOUT = (
    "Making {dish} but I've run out of {missing}. What now?",
    "How do I make {dish} with no {missing}?",
)
SUBST_TRAIN = (
    "What can I use instead of {missing}?",
    "Is there a substitute for {missing}?",
    "I've run out of {missing}. What can I use?",
    "What's a good swap for {missing}?",
    "How do I replace {missing} in a recipe?",
    "No {missing} in the house. Any alternative?",
)
TECHNIQUE_TRAIN = (
    "How do I {verb} {noun}?",
    "What's the best way to {verb} {noun}?",
    "How do you {verb} {noun}?",
    "Can you teach me to {verb} {noun}?",
    "Any tips for how to {verb} {noun}?",
    "how to {verb} {noun}",
    "How long do I {verb} {noun}?",
    "Explain how to {verb} {noun}.",
)
