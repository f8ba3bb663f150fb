"""Dish types: the recipe skeletons that corpus.py fills with a main ingredient and a flavour.

A dish name is "[Flavour] <pattern with the main ingredient>", e.g. "Smoky" + "{M} Stew" +
"Chickpea" -> "Smoky Chickpea Stew". Each type knows its base ingredients, its method (steps
may be limited to some ingredient categories with a "cat,cat|" prefix, and "{F}" marks where the
flavour's own step goes), its times and oven temperature. Everything here was written for
tui-gen; quantities are for home cooking and deliberately round.
"""

from __future__ import annotations

from dataclasses import dataclass

#: default main-ingredient quantity per portion kind and ingredient category
PORTIONS: dict[str, dict[str, str]] = {
    "main": {
        "poultry": "600 g",
        "meat": "700 g",
        "fish": "4",
        "seafood": "400 g",
        "legume": "2 tins (400 g each)",
        "tofu": "400 g",
        "cheese": "200 g",
        "veg": "500 g",
        "fruit": "500 g",
        "*": "400 g",
    },
    "filling": {
        "poultry": "200 g",
        "meat": "150 g",
        "fish": "200 g",
        "seafood": "200 g",
        "legume": "1 tin (400 g)",
        "tofu": "200 g",
        "cheese": "100 g",
        "veg": "200 g",
        "*": "150 g",
    },
    "roast": {"poultry": "1.6 kg", "meat": "1.5 kg", "veg": "1 kg", "*": "1 kg"},
    "fruit_big": {"*": "800 g"},
    "fruit_small": {"*": "150 g"},
    "fruit_blend": {"*": "150 g"},
}

CELSIUS_TO_F = {150: 300, 160: 325, 170: 325, 180: 350, 190: 375, 200: 400, 220: 425, 230: 450}


@dataclass(frozen=True)
class DishType:
    """One recipe skeleton; see the module docstring for the step mini-syntax."""

    key: str
    pattern: str
    mains: tuple[str, ...]
    flavours: tuple[str, ...]
    portion: str
    base: tuple[tuple[str, str], ...]
    steps: tuple[str, ...]
    cook: dict[str, int]
    prep_min: int
    oven: int | None
    serves: str
    desc: str
    tips: tuple[str, ...]
    keeps: str
    form: str = "*"
    prep_note: tuple[tuple[str, str], ...] = ()
    sweet: bool = False


def _d(
    key: str,
    pattern: str,
    mains: str,
    flavours: str,
    portion: str,
    base: list[tuple[str, str]],
    steps: list[str],
    cook: dict[str, int],
    prep_min: int,
    oven: int | None,
    serves: str,
    desc: str,
    tips: list[str],
    keeps: str,
    form: str = "*",
    prep_note: dict[str, str] | None = None,
    sweet: bool = False,
) -> DishType:
    return DishType(
        key,
        pattern,
        tuple(mains.split()),
        tuple(flavours.split()),
        portion,
        tuple(base),
        tuple(steps),
        cook,
        prep_min,
        oven,
        serves,
        desc,
        tuple(tips),
        keeps,
        form,
        tuple((prep_note or {}).items()),
        sweet,
    )


_ONION = ("1", "onion, finely chopped")
_GARLIC = ("2", "garlic cloves, crushed")
_OIL = ("2 tbsp", "olive oil")
_SEASON = ("", "salt and black pepper")
_CHUNKS = {
    "poultry": "cut into chunks",
    "meat": "cut into chunks",
    "fish": "cut into chunks",
    "veg": "cut into chunks",
    "tofu": "cut into cubes",
}
_SLICED = {
    "poultry": "cut into thin strips",
    "meat": "cut into thin strips",
    "veg": "sliced",
    "tofu": "cut into cubes",
    "fish": "cut into pieces",
}
_CHOPPED = {
    "veg": "chopped",
    "poultry": "chopped",
    "meat": "chopped",
    "fish": "flaked",
    "tofu": "crumbled",
    "cheese": "",
}

SAVOURY_VEG = (
    "mushroom cauliflower broccoli squash pumpkin sweet_potato potato aubergine "
    "courgette pepper spinach kale leek carrot pea sweetcorn tomato beetroot parsnip "
    "fennel asparagus green_bean cabbage celeriac"
)
FRUIT = (
    "apple pear banana blueberry raspberry strawberry blackberry cherry plum peach apricot "
    "rhubarb mango pineapple fig gooseberry cranberry"
)

DISH_TYPES: dict[str, DishType] = {
    d.key: d
    for d in [
        _d(
            "soup",
            "{M} Soup",
            "squash pumpkin sweet_potato carrot tomato leek potato mushroom cauliflower broccoli "
            "pea parsnip celeriac beetroot fennel kale red_lentil white_bean black_bean split_pea "
            "chickpea chicken",
            "smoky spicy creamy herby ginger coconut lemony miso harissa thai indian moroccan "
            "mexican italian spanish caribbean ethiopian french",
            "main",
            [_ONION, _GARLIC, _OIL, ("1 litre", "vegetable stock"), _SEASON],
            [
                "Heat the oil in a large pan over a medium heat. Add the onion with a pinch of "
                "salt and cook for 8 minutes until soft.",
                "Add the garlic and cook for 1 minute more.",
                "{F}",
                "Add the {main} and the stock. Bring to the boil, then simmer for {cook} minutes "
                "until tender.",
                "veg,legume|Blend until smooth, adding a splash of water if it is too thick.",
                "poultry|Lift out the chicken, shred it with two forks and return it to the pan.",
                "Taste, season with salt and pepper and serve hot {garnish}.",
            ],
            {"*": 25, "legume": 30, "poultry": 30},
            15,
            None,
            "4",
            "a warming, simple soup",
            [
                "Soup thickens as it stands; loosen it with a little hot stock when reheating.",
                "A spoonful of yoghurt on top adds freshness.",
                "Season at the end: stock can already be salty.",
            ],
            "3 days in the fridge or 3 months in the freezer",
            prep_note=_CHUNKS,
        ),
        _d(
            "stew",
            "{M} Stew",
            "beef lamb pork sausage chicken chickpea butter_bean white_bean green_lentil "
            "squash mushroom sweet_potato",
            "smoky spicy herby harissa moroccan spanish french caribbean ethiopian persian "
            "turkish british cajun italian greek",
            "main",
            [
                _ONION,
                ("2", "carrots, diced"),
                _GARLIC,
                _OIL,
                ("1 tin (400 g)", "chopped tomatoes"),
                ("500 ml", "stock"),
                _SEASON,
            ],
            [
                "meat,poultry|Season the {main} and brown it in the oil in batches in a heavy pan "
                "over a high heat, about 5 minutes per batch. Set aside.",
                "Lower the heat, add the onion and carrots and cook for 10 minutes until soft.",
                "Add the garlic and cook for 1 minute.",
                "{F}",
                "meat,poultry|Return the {main}, add the tomatoes and stock, cover and simmer "
                "gently for {cook} minutes until tender.",
                "legume,veg|Add the {main}, tomatoes and stock and simmer for {cook} minutes until "
                "thick.",
                "Season to taste and serve {garnish}.",
            ],
            {"meat": 120, "poultry": 45, "*": 30},
            20,
            None,
            "4",
            "a slow, comforting stew",
            [
                "Stews taste even better the next day.",
                "If the sauce is thin at the end, simmer with the lid off for 10 minutes.",
                "Serve with crusty bread, rice or mash.",
            ],
            "4 days in the fridge or 3 months in the freezer",
            prep_note=_CHUNKS,
        ),
        _d(
            "curry",
            "{M} Curry",
            "chicken lamb beef prawn cod haddock chickpea red_lentil tofu paneer cauliflower "
            "sweet_potato aubergine potato squash mushroom spinach pea",
            "coconut spicy creamy thai indian caribbean sri_lankan japanese vietnamese",
            "main",
            [
                _ONION,
                ("3", "garlic cloves, crushed"),
                ("1 thumb-sized piece", "ginger, grated"),
                ("2 tbsp", "curry powder"),
                ("1 tin (400 g)", "chopped tomatoes"),
                ("2 tbsp", "vegetable oil"),
                _SEASON,
            ],
            [
                "Heat the oil in a large pan and cook the onion for 8 minutes until golden.",
                "Add the garlic, ginger and curry powder and fry for 1 minute.",
                "{F}",
                "Add the tomatoes and simmer for 5 minutes.",
                "poultry,meat,legume,tofu,veg|Add the {main} with 200 ml water, cover and simmer "
                "for {cook} minutes.",
                "fish,seafood|Lay the {main} in the sauce, cover and simmer for {cook} minutes, "
                "just until cooked through.",
                "Season with salt and serve with rice, {garnish}.",
            ],
            {"meat": 90, "poultry": 25, "fish": 8, "seafood": 5, "tofu": 10, "*": 20},
            15,
            None,
            "4",
            "a fragrant curry",
            [
                "Toasting the spices in oil is what gives the curry its depth.",
                "Add a squeeze of lime at the end to brighten it.",
                "Make it milder with a spoonful of yoghurt stirred in off the heat.",
            ],
            "3 days in the fridge",
            prep_note=_CHUNKS,
        ),
        _d(
            "risotto",
            "{M} Risotto",
            "mushroom squash pea asparagus leek beetroot pumpkin spinach prawn chicken tomato "
            "courgette fennel",
            "lemony herby creamy garlic cheesy pesto italian french",
            "filling",
            [
                ("1", "onion, finely chopped"),
                ("2 tbsp", "butter"),
                ("300 g", "risotto rice"),
                ("100 ml", "dry white wine"),
                ("1.2 litres", "hot vegetable stock"),
                ("50 g", "parmesan, grated"),
            ],
            [
                "Melt half the butter in a wide pan and cook the onion for 6 minutes until soft.",
                "Add the {main} and cook for {cook} minutes, then spoon out and set aside.",
                "Stir in the rice and toast for 1 minute, then pour in the wine and let it bubble "
                "away.",
                "{F}",
                "Add the stock a ladle at a time, stirring, waiting until each is absorbed, for "
                "about 18 minutes until the rice is just tender.",
                "Return the {main}, beat in the rest of the butter and the parmesan, rest for 2 "
                "minutes and serve {garnish}.",
            ],
            {"*": 5, "seafood": 3, "poultry": 8},
            10,
            None,
            "4",
            "a creamy Italian rice dish",
            [
                "Keep the stock hot in a second pan so the rice never stops cooking.",
                "Risotto should flow slowly on the plate; add a splash more stock if it sets.",
                "Stop adding stock when the rice still has a little bite.",
            ],
            "1 day in the fridge; it is best eaten fresh",
            prep_note=_CHOPPED,
        ),
        _d(
            "stir_fry",
            "{M} Stir-Fry",
            "chicken beef pork prawn squid tofu tempeh broccoli mushroom green_bean pak_choi "
            "pepper asparagus edamame",
            "ginger garlic spicy sesame sticky chinese thai korean japanese vietnamese indonesian",
            "main",
            [
                ("2 tbsp", "vegetable oil"),
                ("2", "garlic cloves, sliced"),
                ("4", "spring onions, sliced"),
                ("3 tbsp", "soy sauce"),
                ("1 tsp", "cornflour"),
                ("250 g", "noodles or cooked rice, to serve"),
            ],
            [
                "Mix the soy sauce and cornflour with 3 tbsp water.",
                "Heat the oil in a wok over a high heat until it just smokes.",
                "Stir-fry the {main} for {cook} minutes, then push it to the side.",
                "Add the garlic and spring onions and stir-fry for 30 seconds.",
                "{F}",
                "Pour in the sauce and toss for 1 minute until glossy. Serve at once over noodles "
                "or rice, {garnish}.",
            ],
            {"poultry": 5, "meat": 3, "seafood": 2, "tofu": 5, "*": 4},
            15,
            None,
            "2",
            "a quick, high-heat stir-fry",
            [
                "Have everything chopped before the wok goes on: it cooks in minutes.",
                "Do not crowd the wok, or the food steams instead of frying.",
                "Dry tofu well on kitchen paper so it browns.",
            ],
            "1 day in the fridge",
            form="quick",
            prep_note=_SLICED,
        ),
        _d(
            "fried_rice",
            "{M} Fried Rice",
            "chicken pork prawn tofu crab pea sweetcorn mushroom kale pepper edamame bacon",
            "spicy garlic sesame ginger chinese thai korean indonesian japanese",
            "filling",
            [
                ("500 g", "cooked rice, cold"),
                ("2", "eggs, beaten"),
                ("2 tbsp", "vegetable oil"),
                ("4", "spring onions, sliced"),
                ("2 tbsp", "soy sauce"),
            ],
            [
                "Heat half the oil in a wok, pour in the eggs, scramble and tip onto a plate.",
                "Add the rest of the oil and stir-fry the {main} for {cook} minutes.",
                "{F}",
                "Add the cold rice and stir-fry for 4 minutes, pressing it against the wok.",
                "Add the soy sauce, eggs and spring onions, toss and serve {garnish}.",
            ],
            {"poultry": 5, "meat": 4, "seafood": 3, "*": 3},
            10,
            None,
            "2",
            "a fast way to use leftover rice",
            [
                "Use rice cooked the day before: fresh rice turns mushy.",
                "Cool leftover rice quickly and keep it in the fridge for no more than a day.",
            ],
            "1 day in the fridge",
            form="quick",
            prep_note=_CHOPPED,
        ),
        _d(
            "pasta",
            "{M} Pasta",
            "tomato mushroom courgette spinach broccoli aubergine pea kale asparagus pepper "
            "prawn sausage chorizo bacon salmon tuna crab artichoke squash",
            "lemony garlic creamy spicy herby pesto cheesy smoky italian greek",
            "filling",
            [("350 g", "spaghetti or penne"), _GARLIC, _OIL, ("40 g", "parmesan, grated"), _SEASON],
            [
                "Cook the pasta in plenty of well-salted boiling water until al dente. Keep a mug "
                "of the cooking water.",
                "Meanwhile heat the oil in a frying pan and cook the {main} for {cook} minutes.",
                "Add the garlic and cook for 1 minute.",
                "{F}",
                "Drain the pasta and toss it into the pan with a splash of the cooking water until "
                "glossy.",
                "Stir in the parmesan, season and serve {garnish}.",
            ],
            {"meat": 8, "seafood": 3, "fish": 5, "*": 6},
            10,
            None,
            "4",
            "a quick weeknight pasta",
            [
                "The starchy cooking water is what makes the sauce cling to the pasta.",
                "Salt the pasta water well: it is the only chance to season the pasta itself.",
            ],
            "2 days in the fridge",
            prep_note=_CHOPPED,
        ),
        _d(
            "pasta_bake",
            "{M} Pasta Bake",
            "chicken sausage tuna mushroom broccoli squash aubergine pepper spinach tomato "
            "courgette cauliflower",
            "cheesy creamy smoky spicy herby pesto italian mexican",
            "filling",
            [
                ("300 g", "penne"),
                _ONION,
                _GARLIC,
                ("1 tin (400 g)", "chopped tomatoes"),
                ("125 g", "mozzarella, torn"),
                ("50 g", "cheddar, grated"),
                _OIL,
            ],
            [
                "Heat the oven to {oven}.",
                "Cook the penne for 2 minutes less than the packet says and drain.",
                "Fry the onion in the oil for 6 minutes, add the garlic and the {main} and cook "
                "for {cook} minutes.",
                "{F}",
                "Add the tomatoes and simmer for 5 minutes, then stir in the pasta.",
                "Tip into a baking dish, top with the mozzarella and cheddar and bake for 25 "
                "minutes until bubbling. Serve {garnish}.",
            ],
            {"poultry": 6, "meat": 6, "*": 5},
            15,
            200,
            "4",
            "a bubbling, cheesy bake",
            [
                "Undercook the pasta slightly: it finishes cooking in the oven.",
                "Assemble it a day ahead and add 10 minutes to the baking time.",
            ],
            "3 days in the fridge",
            prep_note=_CHOPPED,
        ),
        _d(
            "salad",
            "{M} Salad",
            "chickpea green_lentil white_bean black_bean beetroot tomato fennel carrot "
            "halloumi feta chicken salmon tuna squash quinoa couscous bulgur cucumber "
            "asparagus",
            "lemony herby spicy sesame miso ginger greek lebanese mexican thai vietnamese "
            "japanese moroccan italian",
            "filling",
            [
                ("100 g", "mixed salad leaves"),
                ("1", "small red onion, thinly sliced"),
                ("3 tbsp", "extra virgin olive oil"),
                ("1 tbsp", "red wine vinegar"),
                ("1 tsp", "Dijon mustard"),
                _SEASON,
            ],
            [
                "Whisk the oil, vinegar and mustard with a pinch of salt to make a dressing.",
                "poultry,fish,tofu|Cook the {main} in a hot pan for {cook} minutes, turning once, "
                "then slice or flake it.",
                "veg|Prepare the {main}: roast or slice as you like, then let cool a little.",
                "grain|Cook the {main} following the packet, then spread it out to cool.",
                "{F}",
                "Toss the leaves and onion with half the dressing.",
                "Add the {main}, drizzle over the rest of the dressing and serve {garnish}.",
            ],
            {"poultry": 12, "fish": 8, "tofu": 6, "*": 10},
            15,
            None,
            "2",
            "a bright, fresh salad",
            [
                "Dress the leaves just before serving so they stay crisp.",
                "Taste the dressing on a leaf, not from the spoon.",
            ],
            "1 day in the fridge, undressed",
            prep_note=_CHOPPED,
        ),
        _d(
            "roast",
            "Roast {N}",
            "chicken turkey lamb pork cauliflower squash carrot potato beetroot parsnip "
            "sweet_potato celeriac fennel",
            "lemony garlic herby smoky sticky harissa spicy moroccan greek french persian "
            "lebanese british",
            "roast",
            [
                ("2 tbsp", "olive oil"),
                ("1", "bulb garlic, halved"),
                ("4 sprigs", "rosemary or thyme"),
                ("1", "onion, cut into wedges"),
                _SEASON,
            ],
            [
                "Heat the oven to {oven}.",
                "poultry,meat|Take the {main} out of the fridge 30 minutes before it goes in.",
                "Put the onion and garlic in a roasting tin and sit the {main} on top.",
                "Rub with the oil, season well and tuck in the herbs.",
                "{F}",
                "Roast for {cook} minutes, basting once or twice.",
                "poultry|Check the juices run clear and the thickest part reads 75°C (165°F).",
                "meat|For pink meat take it out at 60°C (140°F); for well done, 70°C (160°F).",
                "poultry,meat|Rest for 15 minutes under foil before carving. Serve {garnish}.",
                "veg|Turn halfway, and serve when golden at the edges, {garnish}.",
            ],
            {"poultry": 80, "meat": 90, "*": 40},
            15,
            200,
            "4",
            "a Sunday-style roast",
            [
                "Resting lets the juices settle back into the meat.",
                "A meat thermometer takes the guesswork out of roasting.",
                "Dry the skin well with kitchen paper for a crisp finish.",
            ],
            "3 days in the fridge",
            form="whole",
            prep_note={"veg": "cut into large pieces"},
        ),
        _d(
            "traybake",
            "{M} Traybake",
            "chicken sausage chorizo salmon cod hake chickpea halloumi tofu squash sweet_potato "
            "cauliflower aubergine",
            "smoky lemony herby sticky harissa spicy garlic miso moroccan greek spanish "
            "lebanese cajun",
            "main",
            [
                ("2", "red onions, cut into wedges"),
                ("2", "peppers, cut into chunks"),
                ("500 g", "new potatoes, halved"),
                ("3 tbsp", "olive oil"),
                _SEASON,
            ],
            [
                "Heat the oven to {oven}.",
                "Toss the potatoes, onions and peppers with 2 tbsp oil and seasoning in a large "
                "tin and roast for 20 minutes.",
                "{F}",
                "Add the {main}, drizzle with the rest of the oil and roast for {cook} minutes "
                "more.",
                "Serve straight from the tin {garnish}.",
            ],
            {"fish": 12, "poultry": 30, "meat": 25, "*": 20},
            15,
            200,
            "4",
            "a one-tin dinner with almost no washing up",
            [
                "Use the biggest tin you have: crowded vegetables steam instead of roasting.",
                "Cut everything to a similar size so it cooks evenly.",
            ],
            "2 days in the fridge",
            prep_note=_CHUNKS,
        ),
        _d(
            "pie",
            "{M} Pie",
            "chicken beef lamb mushroom leek haddock salmon green_lentil squash",
            "creamy herby smoky cheesy british french",
            "main",
            [
                _ONION,
                ("2", "carrots, diced"),
                ("2 tbsp", "plain flour"),
                ("400 ml", "stock"),
                ("1 sheet (320 g)", "ready-rolled puff pastry"),
                ("1", "egg, beaten"),
                _OIL,
            ],
            [
                "Heat the oven to {oven}.",
                "Fry the onion and carrots in the oil for 8 minutes.",
                "Add the {main} and cook for {cook} minutes.",
                "{F}",
                "Stir in the flour, then the stock, and simmer for 5 minutes until thick. Season "
                "and spoon into a pie dish.",
                "Lay the pastry over, trim, brush with egg and cut a small steam hole.",
                "Bake for 30 minutes until golden. Serve {garnish}.",
            ],
            {"meat": 60, "poultry": 10, "fish": 3, "*": 8},
            25,
            200,
            "6",
            "a golden pastry-topped pie",
            [
                "Let the filling cool before adding the pastry so it stays crisp.",
                "Brush the pastry with egg twice for a deep shine.",
            ],
            "3 days in the fridge",
            prep_note=_CHUNKS,
        ),
        _d(
            "quiche",
            "{M} Quiche",
            "leek mushroom spinach asparagus tomato broccoli bacon salmon goats_cheese feta "
            "cheddar courgette pepper",
            "herby cheesy smoky french greek",
            "filling",
            [
                ("1 (23 cm)", "shortcrust pastry case, blind-baked"),
                ("3", "eggs"),
                ("300 ml", "double cream or milk"),
                ("50 g", "gruyère, grated"),
                _SEASON,
            ],
            [
                "Heat the oven to {oven}.",
                "veg,meat,fish|Cook the {main} in a little oil for {cook} minutes, then spread "
                "over the pastry case.",
                "cheese|Scatter the {main} over the pastry case.",
                "{F}",
                "Whisk the eggs with the cream, season and pour over the filling.",
                "Scatter with the cheese and bake for 30 minutes until just set with a slight "
                "wobble.",
                "Cool for 15 minutes before slicing. Serve {garnish}.",
            ],
            {"cheese": 0, "meat": 5, "*": 5},
            20,
            180,
            "6",
            "a savoury tart",
            [
                "Pull it out while the centre still wobbles; it sets as it cools.",
                "Brush the baked pastry with beaten egg to seal it against a soggy base.",
            ],
            "3 days in the fridge",
            prep_note=_CHOPPED,
        ),
        _d(
            "omelette",
            "{M} Omelette",
            "mushroom spinach tomato pepper cheddar feta goats_cheese bacon chorizo salmon "
            "courgette asparagus",
            "herby cheesy spicy smoky french spanish",
            "filling",
            [("3", "eggs"), ("1 tbsp", "butter"), ("1 tbsp", "milk"), _SEASON],
            [
                "Beat the eggs with the milk and a pinch of salt.",
                "veg,meat,fish|Melt half the butter in a non-stick pan and cook the {main} for "
                "{cook} minutes. Tip onto a plate.",
                "{F}",
                "Add the rest of the butter, pour in the eggs and stir gently with a spatula for "
                "30 seconds, then leave to set for 1 minute.",
                "Spoon the filling over one half, fold and slide onto a plate. Serve {garnish}.",
            ],
            {"cheese": 0, "*": 3},
            5,
            None,
            "1",
            "a quick one-person lunch",
            [
                "Take it off the heat while the top is still slightly runny.",
                "A small pan (20 cm) gives a thicker, softer omelette.",
            ],
            "best eaten straight away",
            prep_note=_CHOPPED,
        ),
        _d(
            "tacos",
            "{M} Tacos",
            "chicken beef pork cod prawn black_bean mushroom cauliflower sweet_potato tofu "
            "halloumi",
            "smoky spicy lemony mexican korean caribbean cajun japanese",
            "main",
            [
                ("8", "small corn tortillas"),
                ("1", "lime"),
                ("1/4", "red cabbage, finely shredded"),
                ("4 tbsp", "soured cream"),
                ("1 tsp", "ground cumin"),
                _OIL,
                _SEASON,
            ],
            [
                "Toss the {main} with the cumin, oil and seasoning.",
                "Cook in a hot pan for {cook} minutes until browned and cooked through.",
                "{F}",
                "Toss the cabbage with the juice of half the lime and a pinch of salt.",
                "Warm the tortillas in a dry pan for 20 seconds each side.",
                "Fill with the {main}, cabbage and soured cream and serve {garnish}.",
            ],
            {"poultry": 8, "meat": 6, "fish": 6, "seafood": 3, "*": 8},
            15,
            None,
            "4",
            "a bright, messy taco night",
            [
                "Warm tortillas fold without cracking.",
                "Set everything out and let people build their own.",
            ],
            "fillings keep 2 days in the fridge",
            form="quick",
            prep_note=_SLICED,
        ),
        _d(
            "burgers",
            "{M} Burgers",
            "beef lamb pork turkey chicken black_bean chickpea salmon mushroom halloumi beetroot",
            "smoky spicy herby cheesy mexican greek korean indian moroccan cajun",
            "main",
            [
                ("1", "small onion, grated"),
                ("1", "egg"),
                ("40 g", "breadcrumbs"),
                ("4", "burger buns"),
                ("4", "lettuce leaves"),
                ("1", "tomato, sliced"),
                _OIL,
                _SEASON,
            ],
            [
                "Mix the {main} with the onion, egg, breadcrumbs and seasoning.",
                "{F}",
                "Shape into 4 patties, pressing a dip in the middle of each, and chill for 20 "
                "minutes.",
                "Fry in the oil over a medium-high heat for {cook} minutes, turning once.",
                "meat,poultry|Check the middle reaches 71°C (160°F) for minced meat.",
                "Toast the buns and build the burgers with lettuce and tomato. Serve {garnish}.",
            ],
            {"*": 10, "veg": 8, "legume": 8, "tofu": 6},
            20,
            None,
            "4",
            "a juicy homemade burger",
            [
                "Chilling the patties helps them hold together in the pan.",
                "Only flip once, and do not press them down while they cook.",
            ],
            "raw patties freeze for 3 months",
            form="mince",
            prep_note={"legume": "mashed", "veg": "finely chopped", "fish": "finely chopped"},
        ),
        _d(
            "fritters",
            "{M} Fritters",
            "courgette sweetcorn pea carrot sweet_potato spinach cauliflower potato beetroot "
            "chickpea feta",
            "spicy herby lemony cheesy indian thai greek turkish lebanese",
            "filling",
            [
                ("100 g", "self-raising flour"),
                ("2", "eggs"),
                ("100 ml", "milk"),
                ("3", "spring onions, sliced"),
                ("3 tbsp", "vegetable oil"),
                _SEASON,
            ],
            [
                "Whisk the flour, eggs and milk to a thick batter.",
                "Stir in the {main} and spring onions and season well.",
                "{F}",
                "Heat the oil in a frying pan and drop in tablespoons of the batter.",
                "Fry for {cook} minutes a side until golden and cooked through. Drain on kitchen "
                "paper and serve {garnish}.",
            ],
            {"*": 3},
            15,
            None,
            "4 (makes 12)",
            "crisp little fritters",
            [
                "Squeeze grated vegetables in a clean tea towel first so the fritters crisp.",
                "Keep the first batch warm in a low oven while you fry the rest.",
            ],
            "2 days in the fridge; reheat in the oven",
            prep_note={"veg": "grated", "legume": "roughly mashed"},
        ),
        _d(
            "noodle_soup",
            "{M} Noodle Soup",
            "chicken beef pork prawn tofu mushroom pak_choi kale salmon",
            "ginger spicy miso coconut sesame thai vietnamese japanese chinese korean",
            "filling",
            [
                ("1.2 litres", "chicken or vegetable stock"),
                ("200 g", "noodles"),
                ("1 thumb-sized piece", "ginger, sliced"),
                ("2", "garlic cloves, sliced"),
                ("2 tbsp", "soy sauce"),
                ("4", "spring onions, sliced"),
            ],
            [
                "Bring the stock to a simmer with the ginger and garlic for 10 minutes.",
                "{F}",
                "Add the {main} and simmer for {cook} minutes until cooked.",
                "Cook the noodles separately following the packet, drain and divide between bowls.",
                "Season the broth with the soy sauce, ladle over the noodles and serve {garnish}.",
            ],
            {"poultry": 8, "meat": 3, "seafood": 3, "fish": 5, "*": 4},
            10,
            None,
            "4",
            "a light, fragrant bowl of broth",
            [
                "Cook the noodles separately so they do not cloud the broth.",
                "Slice meat very thinly and it cooks in the hot broth in minutes.",
            ],
            "the broth keeps 3 days in the fridge",
            form="quick",
            prep_note=_SLICED,
        ),
        _d(
            "chilli",
            "{M} Chilli",
            "beef turkey chicken black_bean kidney_bean green_lentil sweet_potato mushroom squash",
            "smoky spicy mexican cajun",
            "main",
            [
                _ONION,
                _GARLIC,
                ("1", "red pepper, diced"),
                ("2 tsp", "ground cumin"),
                ("1 tsp", "chilli powder"),
                ("2 tins (400 g each)", "chopped tomatoes"),
                ("1 tin (400 g)", "kidney beans, drained"),
                _OIL,
                _SEASON,
            ],
            [
                "meat,poultry|Brown the {main} in the oil in a large pan, breaking it up, for 8 "
                "minutes.",
                "Add the onion and pepper and cook for 8 minutes until soft.",
                "Add the garlic, cumin and chilli powder and cook for 1 minute.",
                "{F}",
                "Add the tomatoes, beans and the rest of the {main} and simmer for {cook} minutes, "
                "stirring now and then.",
                "Season and serve with rice or tortilla chips, {garnish}.",
            ],
            {"meat": 60, "poultry": 40, "*": 35},
            15,
            None,
            "6",
            "a big pot of chilli",
            [
                "A square of dark chocolate stirred in at the end rounds out the flavour.",
                "Chilli freezes well, so make a double batch.",
            ],
            "4 days in the fridge or 3 months in the freezer",
            form="mince",
            prep_note=_CHUNKS,
        ),
        _d(
            "skewers",
            "{M} Skewers",
            "chicken lamb beef pork prawn tofu halloumi paneer mushroom courgette salmon",
            "spicy lemony herby garlic sticky greek turkish indian lebanese thai japanese "
            "moroccan persian",
            "main",
            [
                ("3 tbsp", "plain yoghurt"),
                ("2 tbsp", "olive oil"),
                _GARLIC,
                ("1", "lemon, juiced"),
                ("1", "red onion, cut into chunks"),
                ("8", "skewers (soaked if wooden)"),
                _SEASON,
            ],
            [
                "Mix the yoghurt, oil, garlic and lemon juice with a good pinch of salt.",
                "{F}",
                "Coat the {main} in the marinade and leave for at least 30 minutes.",
                "Thread onto the skewers with the onion.",
                "Grill or griddle over a high heat for {cook} minutes, turning, until charred and "
                "cooked through. Serve {garnish}.",
            ],
            {"poultry": 12, "meat": 10, "seafood": 4, "fish": 6, "*": 8},
            40,
            None,
            "4",
            "charred, marinated skewers",
            [
                "Soak wooden skewers in water for 30 minutes so they do not burn.",
                "Leave a little space between the pieces so they char rather than steam.",
            ],
            "2 days in the fridge",
            form="quick",
            prep_note=_CHUNKS,
        ),
        _d(
            "pilaf",
            "{M} Pilaf",
            "chicken lamb chickpea squash mushroom carrot green_lentil prawn cauliflower",
            "herby lemony spicy persian turkish indian lebanese greek moroccan",
            "filling",
            [
                _ONION,
                ("300 g", "basmati rice, rinsed"),
                ("600 ml", "hot stock"),
                ("2 tbsp", "butter"),
                ("1", "cinnamon stick"),
                _SEASON,
            ],
            [
                "Melt the butter in a heavy pan and cook the onion for 8 minutes until golden.",
                "Add the {main} and cook for {cook} minutes.",
                "{F}",
                "Stir in the rice and cinnamon to coat in the butter.",
                "Pour in the stock, bring to the boil, cover tightly and cook on the lowest heat "
                "for 12 minutes.",
                "Leave covered off the heat for 10 minutes, fluff with a fork and serve {garnish}.",
            ],
            {"poultry": 6, "meat": 8, "*": 5},
            10,
            None,
            "4",
            "a fragrant one-pot rice",
            [
                "Rinse the rice until the water runs clear for separate grains.",
                "Do not lift the lid while the rice steams.",
            ],
            "1 day in the fridge; cool rice quickly",
            prep_note=_CHUNKS,
        ),
        _d(
            "shakshuka",
            "{M} Shakshuka",
            "pepper spinach chickpea feta chorizo courgette aubergine white_bean kale",
            "spicy smoky herby harissa moroccan turkish lebanese",
            "filling",
            [
                _ONION,
                _GARLIC,
                ("1 tsp", "ground cumin"),
                ("2 tins (400 g each)", "chopped tomatoes"),
                ("4", "eggs"),
                _OIL,
                _SEASON,
            ],
            [
                "Heat the oil in a deep frying pan and cook the onion for 8 minutes.",
                "Add the garlic, cumin and the {main} and cook for {cook} minutes.",
                "{F}",
                "Pour in the tomatoes and simmer for 10 minutes until thick. Season.",
                "Make 4 hollows, crack in the eggs, cover and cook for 6 to 8 minutes until the "
                "whites are set.",
                "Serve from the pan with bread, {garnish}.",
            ],
            {"*": 4},
            10,
            None,
            "2",
            "eggs poached in a spiced tomato sauce",
            [
                "Cover the pan so the tops of the eggs cook through.",
                "Take it off the heat while the yolks are still runny.",
            ],
            "the sauce keeps 3 days; add eggs fresh",
            prep_note=_CHOPPED,
        ),
        _d(
            "gratin",
            "{M} Gratin",
            "potato cauliflower leek fennel squash sweet_potato celeriac broccoli parsnip",
            "cheesy creamy herby garlic smoky french",
            "main",
            [
                ("300 ml", "double cream"),
                ("150 ml", "milk"),
                _GARLIC,
                ("60 g", "gruyère, grated"),
                ("1 tbsp", "butter"),
                _SEASON,
            ],
            [
                "Heat the oven to {oven} and butter a baking dish.",
                "Warm the cream, milk and garlic in a pan with a good pinch of salt.",
                "{F}",
                "Layer the {main} in the dish and pour over the warm cream.",
                "Scatter with the cheese and bake for {cook} minutes until tender and golden. "
                "Serve {garnish}.",
            ],
            {"*": 50},
            20,
            180,
            "6",
            "a rich, golden bake",
            [
                "Slice the vegetables thinly and evenly so they cook at the same rate.",
                "Cover with foil for the first half if the top browns too fast.",
            ],
            "3 days in the fridge",
            prep_note={"veg": "thinly sliced"},
        ),
        # sweet types
        _d(
            "muffins",
            "{M} Muffins",
            "blueberry raspberry apple banana cherry pear blackberry cranberry chocolate "
            "coconut oat date carrot courgette pumpkin walnut peanut_butter rhubarb mango",
            "cinnamon vanilla lemon orange ginger_sweet maple honey_sweet cardamom spiced "
            "almond_sweet brown_sugar",
            "fruit_small",
            [
                ("250 g", "plain flour"),
                ("2 tsp", "baking powder"),
                ("150 g", "caster sugar"),
                ("2", "eggs"),
                ("200 ml", "milk"),
                ("90 ml", "vegetable oil"),
                ("1 pinch", "salt"),
            ],
            [
                "Heat the oven to {oven} and line a 12-hole muffin tin with cases.",
                "Mix the flour, baking powder, sugar and salt in a large bowl.",
                "{F}",
                "Whisk the eggs, milk and oil in a jug, then pour into the dry ingredients.",
                "Stir until just combined (a few lumps are fine), then fold in the {main}.",
                "Divide between the cases and bake for {cook} minutes until risen and a skewer "
                "comes out clean. Serve {garnish}.",
            ],
            {"*": 22},
            15,
            200,
            "makes 12",
            "soft, easy muffins",
            [
                "Overmixing makes muffins tough: stop as soon as there is no dry flour.",
                "Toss berries in a spoonful of flour so they do not sink.",
            ],
            "3 days in an airtight tin",
            prep_note={"veg": "grated"},
            sweet=True,
        ),
        _d(
            "cake",
            "{M} Cake",
            "lemon orange apple banana blueberry raspberry cherry plum pear carrot chocolate "
            "coconut date walnut beetroot courgette rhubarb pineapple hazelnut",
            "cinnamon vanilla lemon orange ginger_sweet maple cardamom spiced almond_sweet "
            "honey_sweet brown_sugar",
            "fruit_small",
            [
                ("200 g", "softened butter"),
                ("200 g", "caster sugar"),
                ("4", "eggs"),
                ("200 g", "self-raising flour"),
                ("2 tbsp", "milk"),
            ],
            [
                "Heat the oven to {oven}. Grease and line a 20 cm round tin.",
                "Beat the butter and sugar for 3 minutes until pale and fluffy.",
                "Beat in the eggs one at a time, adding a spoonful of flour with the last.",
                "{F}",
                "Fold in the rest of the flour, the milk and the {main}.",
                "Spoon into the tin and bake for {cook} minutes until a skewer comes out clean.",
                "Cool in the tin for 10 minutes, then on a rack. Serve {garnish}.",
            ],
            {"*": 45},
            20,
            180,
            "10",
            "a simple, generous cake",
            [
                "Have the butter and eggs at room temperature so the mixture does not curdle.",
                "Do not open the oven in the first 30 minutes.",
            ],
            "4 days in an airtight tin",
            prep_note={"veg": "grated"},
            sweet=True,
        ),
        _d(
            "crumble",
            "{M} Crumble",
            "apple pear rhubarb plum blackberry peach cherry blueberry apricot gooseberry "
            "mango raspberry fig",
            "cinnamon vanilla ginger_sweet orange lemon maple spiced almond_sweet cardamom "
            "brown_sugar",
            "fruit_big",
            [
                ("75 g", "caster sugar"),
                ("175 g", "plain flour"),
                ("100 g", "cold butter, diced"),
                ("75 g", "demerara sugar"),
                ("50 g", "rolled oats"),
            ],
            [
                "Heat the oven to {oven}.",
                "Toss the {main} with the caster sugar and spread in a baking dish.",
                "{F}",
                "Rub the butter into the flour with your fingertips until it looks like "
                "breadcrumbs, then stir in the demerara sugar and oats.",
                "Scatter the crumble over the fruit without pressing it down.",
                "Bake for {cook} minutes until golden and bubbling at the edges. Serve warm "
                "{garnish}.",
            ],
            {"*": 35},
            15,
            190,
            "6",
            "a warm fruit pudding",
            [
                "Keep the butter cold so the topping stays crumbly.",
                "Serve with custard, cream or ice cream.",
            ],
            "3 days in the fridge",
            sweet=True,
        ),
        _d(
            "pancakes",
            "{M} Pancakes",
            "blueberry banana apple raspberry strawberry chocolate coconut oat pumpkin "
            "blackberry cherry peanut_butter",
            "cinnamon vanilla lemon maple honey_sweet spiced orange cardamom brown_sugar",
            "fruit_small",
            [
                ("200 g", "self-raising flour"),
                ("1 tsp", "baking powder"),
                ("1 tbsp", "caster sugar"),
                ("1", "egg"),
                ("250 ml", "milk"),
                ("1 tbsp", "butter, melted, plus extra for the pan"),
            ],
            [
                "Mix the flour, baking powder and sugar in a bowl.",
                "{F}",
                "Whisk the egg, milk and melted butter and pour into the flour. Whisk to a thick, "
                "smooth batter.",
                "Stir in the {main}.",
                "Heat a non-stick pan over a medium heat with a little butter.",
                "Drop in ladles of batter and cook for {cook} minutes until bubbles appear, then "
                "flip and cook for 1 minute more. Serve {garnish}.",
            ],
            {"*": 2},
            10,
            None,
            "4 (makes 12)",
            "thick, fluffy breakfast pancakes",
            [
                "Let the batter rest for 5 minutes while the pan heats.",
                "The first pancake is a test: adjust the heat after it.",
            ],
            "batter keeps 1 day in the fridge",
            prep_note={"veg": "puréed"},
            sweet=True,
        ),
        _d(
            "cookies",
            "{M} Cookies",
            "chocolate oat coconut cranberry walnut pecan peanut_butter date hazelnut",
            "cinnamon vanilla ginger_sweet orange maple spiced almond_sweet brown_sugar cardamom",
            "fruit_small",
            [
                ("125 g", "softened butter"),
                ("100 g", "light brown sugar"),
                ("50 g", "caster sugar"),
                ("1", "egg"),
                ("200 g", "plain flour"),
                ("1/2 tsp", "bicarbonate of soda"),
                ("1 pinch", "salt"),
            ],
            [
                "Heat the oven to {oven} and line two baking trays.",
                "Beat the butter and both sugars until creamy, then beat in the egg.",
                "{F}",
                "Stir in the flour, bicarbonate of soda and salt, then the {main}.",
                "Roll into 20 balls and space them well apart on the trays.",
                "Bake for {cook} minutes until golden at the edges but soft in the middle. Cool on "
                "the trays for 5 minutes. Serve {garnish}.",
            ],
            {"*": 12},
            15,
            180,
            "makes 20",
            "chewy homemade cookies",
            [
                "Take them out while the centres look underdone: they firm up as they cool.",
                "Chill the dough for 30 minutes for thicker cookies.",
            ],
            "5 days in an airtight tin",
            sweet=True,
        ),
        _d(
            "porridge",
            "{M} Porridge",
            "apple banana blueberry pear raspberry plum mango date peanut_butter coconut "
            "chocolate strawberry",
            "cinnamon vanilla maple honey_sweet spiced cardamom brown_sugar",
            "fruit_blend",
            [("80 g", "rolled oats"), ("500 ml", "milk"), ("1 pinch", "salt")],
            [
                "Put the oats, milk and salt in a pan over a medium heat.",
                "{F}",
                "Bring to a simmer and cook for {cook} minutes, stirring often, until creamy.",
                "Stir in half the {main} and spoon into bowls.",
                "Top with the rest of the {main} and serve {garnish}.",
            ],
            {"*": 5},
            2,
            None,
            "2",
            "a warm, filling breakfast",
            [
                "Add a splash more milk if it thickens too much.",
                "Soak the oats overnight to cook them in half the time.",
            ],
            "best eaten fresh",
            sweet=True,
        ),
        _d(
            "smoothie",
            "{M} Smoothie",
            "blueberry strawberry mango raspberry pineapple peach blackberry cherry "
            "peanut_butter oat spinach kale",
            "vanilla honey_sweet ginger_sweet cinnamon maple cardamom",
            "fruit_blend",
            [
                ("150 g", "plain yoghurt"),
                ("250 ml", "milk"),
                ("1", "banana, frozen in chunks"),
                ("4", "ice cubes"),
            ],
            [
                "Put the milk and yoghurt in the blender first.",
                "Add the {main}, banana and ice.",
                "{F}",
                "Blend for {cook} minute until smooth.",
                "Taste, add a little honey if needed, and pour into glasses. Serve {garnish}.",
            ],
            {"*": 1},
            5,
            None,
            "2",
            "a quick breakfast in a glass",
            [
                "Frozen fruit makes it thick and cold without watering it down.",
                "Add more milk for a thinner smoothie.",
            ],
            "drink within a day",
            sweet=True,
        ),
    ]
}
