"""Prompt and answer phrasings of the demo data, per task and language.

Placeholders: ``{t}``/``{T}`` the topic's English name (lower/capitalised first letter), ``{n}`` its
Chinese name, ``{w1}..{w3}`` English topic words and ``{z1}..{z3}`` the aligned Chinese words,
``{fact}``/``{zfact}`` the topic's fact sentence, ``{s}`` a sentence to translate.

Each task has ``train`` phrasings (used in every training file and in ``sft_val``) and ``heldout``
phrasings that appear only in ``prompts_heldout.jsonl``, so the held-out evaluation asks with
wordings the model never saw.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("poem", "explain", "list", "advice", "translate", "greet")
LANGS: tuple[str, ...] = ("en", "zh")

PROMPTS: dict[str, dict[str, dict[str, list[str]]]] = {
    "poem": {
        "en": {
            "train": [
                "Write a poem about {t}.",
                "Write a short poem about {t}.",
                "Can you write a poem on {t}?",
                "Compose a little poem about {t}.",
                "Please write a few lines of poetry about {t}.",
                "Write a poem for {t}.",
                "A poem about {t}, please.",
                "Could you write me a short poem about {t}?",
            ],
            "heldout": ["I'd like a poem whose subject is {t}.", "Give me some verses about {t}."],
        },
        "zh": {
            "train": [
                "写一首关于{n}的诗",
                "写一首关于{n}的短诗。",
                "请以{n}为题写一首诗",
                "能为{n}写一首小诗吗？",
                "帮我写几句关于{n}的诗",
                "写一首描写{n}的小诗",
                "请写一首{n}的诗。",
                "来一首关于{n}的诗吧",
            ],
            "heldout": ["作一首咏{n}的诗", "我想读一首描写{n}的诗"],
        },
    },
    "explain": {
        "en": {
            "train": [
                "Explain {t}.",
                "Tell me about {t}.",
                "What can you tell me about {t}?",
                "Please explain {t} in simple words.",
                "Describe {t} briefly.",
                "What is {t}?",
                "Explain {t} to a child.",
                "Could you explain {t}?",
            ],
            "heldout": ["Help me understand {t}, please.", "I have never heard of {t}. What is it about?"],
        },
        "zh": {
            "train": [
                "解释什么是{n}",
                "请介绍一下{n}。",
                "{n}是什么？",
                "用简单的话解释{n}",
                "给我讲讲{n}吧",
                "什么是{n}？",
                "简单介绍一下{n}",
                "能解释一下{n}吗？",
            ],
            "heldout": ["我不太懂{n}，能说明一下吗？", "科普一下{n}"],
        },
    },
    "list": {
        "en": {
            "train": [
                "List three things about {t}.",
                "Give me three words related to {t}.",
                "Name three things you associate with {t}.",
                "What are three words that go with {t}?",
                "Can you list some words about {t}?",
                "List some words about {t}.",
                "Give me a short list about {t}.",
                "Three words about {t}, please.",
            ],
            "heldout": ["Jot down a few keywords for {t}.", "Which things come to mind with {t}? Give a short list."],
        },
        "zh": {
            "train": [
                "列出三个和{n}有关的词",
                "说出三样和{n}有关的东西。",
                "关于{n}，你能想到哪些词？",
                "请列举几个与{n}相关的词语",
                "给我三个描写{n}的词",
                "列举一些和{n}有关的东西",
                "关于{n}，列出三个词。",
                "说几个和{n}相关的词吧",
            ],
            "heldout": ["{n}会让你联想到哪些东西？", "用几个关键词概括{n}"],
        },
    },
    "advice": {
        "en": {
            "train": [
                "How can I enjoy {t}?",
                "Give me some advice about {t}.",
                "Any tips for someone who loves {t}?",
                "What should I know about {t}?",
                "Share a tip about {t}.",
                "Do you have any advice on {t}?",
                "How do I get started with {t}?",
                "Give me a tip for {t}.",
            ],
            "heldout": ["I'm new to {t}. Where should I start?", "What would you suggest to a beginner in {t}?"],
        },
        "zh": {
            "train": [
                "怎样才能更好地享受{n}？",
                "关于{n}，给我一些建议",
                "我很喜欢{n}，有什么建议吗？",
                "了解{n}要从哪里开始？",
                "分享一个关于{n}的小建议",
                "关于{n}，你有什么建议？",
                "怎样开始了解{n}？",
                "给我一个关于{n}的建议吧",
            ],
            "heldout": ["第一次接触{n}，应该注意些什么？", "对{n}感兴趣的新手该怎么做？"],
        },
    },
    "translate": {
        "en": {
            "train": [
                "Translate into Chinese: {s}",
                "Translate to Chinese: {s}",
                'How do you say "{s}" in Chinese?',
                "Please translate this sentence into Chinese: {s}",
                'What is "{s}" in Chinese?',
                "Translate this into Chinese: {s}",
                "In Chinese, please: {s}",
                "Chinese translation of: {s}",
            ],
            "heldout": ["Render this in Chinese, please: {s}", "Chinese version of this, please: {s}"],
        },
        "zh": {
            "train": [
                "把这句话翻译成英文：{s}",
                "翻译成英语：{s}",
                "“{s}”用英语怎么说？",
                "请把下面的句子译成英文：{s}",
                "英文翻译：{s}",
                "请翻译成英文：{s}",
                "用英文说：{s}",
                "这句话翻译成英语是什么？{s}",
            ],
            "heldout": ["帮我把“{s}”翻成英文", "这句话的英文怎么写：{s}"],
        },
    },
    "greet": {
        "en": {
            "train": [
                "Hi! Can we talk about {t}?",
                "Hello! Tell me something nice about {t}.",
                "Good morning! I was thinking about {t}.",
                "Hey, do you like {t}?",
                "Hi there, let's chat about {t}.",
                "Hello! Let's talk about {t}.",
                "Hi! What do you think of {t}?",
                "Good evening! Say something about {t}.",
            ],
            "heldout": ["Greetings! What's on your mind about {t} today?", "Hello friend, say a word about {t}."],
        },
        "zh": {
            "train": [
                "你好！我们聊聊{n}吧？",
                "嗨，跟我说说{n}吧。",
                "早上好！我刚才在想{n}。",
                "你好呀，你喜欢{n}吗？",
                "嗨！今天想聊聊{n}。",
                "你好！说说{n}吧。",
                "嗨，你觉得{n}怎么样？",
                "晚上好！聊一聊{n}吧。",
            ],
            "heldout": ["哈喽，说点关于{n}的事吧", "你好，{n}让你想到了什么？"],
        },
    },
}

# Answers by the language of the prompt (a translation's answer is in the other language).
ANSWERS: dict[str, dict[str, list[str]]] = {
    "poem": {
        "en": [
            "{T} is gentle, {t} is bright: {w1} and {w2}, {w3} in the light.",
            "Oh {t}, you bring {w1}, {w2} and {w3}, and my heart is full of you.",
            "I sing of {t}: {w1} in the morning, {w2} at noon, {w3} when the day is done.",
            "A little song for {t}: quiet {w1}, soft {w2}, a dream of {w3}.",
        ],
        "zh": [
            "{n}入梦来，{z1}轻轻，{z2}悠悠，{z3}相伴。",
            "{n}啊{n}，{z1}在前，{z2}在后，{z3}写满心头。",
            "{n}的模样：一片{z1}，一缕{z2}，一声{z3}。",
            "我爱{n}，爱它的{z1}，爱它的{z2}，也爱那{z3}。",
        ],
    },
    "explain": {
        "en": [
            "{fact} People often think of {w1} and {w2}.",
            "{fact} When you think about {t}, picture {w1}, {w2} and {w3}.",
            "{fact} In short, think of {w1} and {w2}.",
        ],
        "zh": [
            "{zfact}人们常常把它和{z1}、{z2}联系在一起。",
            "{zfact}说到{n}，就会想到{z1}和{z2}。",
            "{zfact}{n}让人想起{z1}、{z2}和{z3}。",
        ],
    },
    "list": {
        "en": [
            "Here are three things about {t}: {w1}, {w2} and {w3}.",
            "Words for {t}: 1. {w1} 2. {w2} 3. {w3}.",
            "Three words for {t}: {w1}, {w2}, {w3}.",
        ],
        "zh": [
            "和{n}有关的词：{z1}、{z2}、{z3}。",
            "说到{n}，我想到{z1}、{z2}和{z3}。",
            "{n}：一、{z1}；二、{z2}；三、{z3}。",
        ],
    },
    "advice": {
        "en": [
            "To enjoy {t}, start with {w1}, then notice {w2}. Take your time.",
            "My advice for {t}: learn about {w1} and {w2}, and share it with a friend.",
            "A good tip for {t}: spend a quiet moment with {w1} and {w2}.",
        ],
        "zh": [
            "可以先留意{z1}，再慢慢感受{z2}，{n}会给你惊喜。",
            "关于{n}，我的建议是：多了解{z1}和{z2}，也和朋友一起分享。",
            "想更喜欢{n}，就试着安静下来，看看{z1}，想想{z2}。",
        ],
    },
    "translate": {
        "en": ["In Chinese: {s}", "{s}", "The Chinese is: {s}"],
        "zh": ["英文是：{s}", "{s}", "翻译：{s}"],
    },
    "greet": {
        "en": [
            "Hello! I'd love to talk about {t}. I think of {w1} and {w2}.",
            "Hi! {fact}",
            "Good day! When I think of {t}, I see {w1}, {w2} and {w3}.",
        ],
        "zh": [
            "你好！很高兴和你聊{n}。我想到了{z1}和{z2}。",
            "你好！{zfact}",
            "嗨！一想到{n}，我就看到{z1}、{z2}和{z3}。",
        ],
    },
}

# Sentence pairs for the translation task: (English, Chinese).
TRANSLATION_PAIRS: list[tuple[str, str]] = [
    ("I like {w1}.", "我喜欢{z1}。"),
    ("{W1} reminds me of {t}.", "{z1}让我想起{n}。"),
    ("Look at the {w1}!", "看那{z1}！"),
    ("{W1} is part of {t}.", "{z1}是{n}的一部分。"),
    ("We talked about {w1} and {w2}.", "我们聊了{z1}和{z2}。"),
    ("I dream of {t}.", "我梦见了{n}。"),
]

# Topic-free small talk: (prompt, answers) per language; SFT only.
SMALL_TALK: dict[str, list[tuple[str, list[str]]]] = {
    "en": [
        ("Hello!", ["Hello! How can I help you today?", "Hi! Ask me for a poem, an explanation or a translation."]),
        ("Hi there!", ["Hi! What would you like to talk about?"]),
        ("Who are you?", ["I am a small assistant. I can write poems, explain things and translate."]),
        ("Thank you!", ["You are welcome!", "Happy to help!"]),
        ("What can you do?", ["I can write short poems, explain simple ideas, give advice and translate."]),
        ("Translate into Chinese: Hello world", ["In Chinese: 世界你好"]),
    ],
    "zh": [
        ("你好", ["你好！有什么可以帮你的吗？", "你好！我可以写诗、解释概念，也可以翻译。"]),
        ("早上好！", ["早上好！今天想聊点什么？"]),
        ("你是谁？", ["我是一个小助手，会写诗、解释问题和翻译句子。"]),
        ("谢谢你！", ["不客气！", "很高兴能帮到你！"]),
        ("你能做什么？", ["我可以写短诗、解释简单的概念、给出建议，还能翻译。"]),
        ("翻译英语句子：Hello world", ["世界你好"]),
    ],
}

# Fixed rows quoted from the seed tutorials (prompt, response, topic key, task).
SEED_ROWS: list[tuple[str, str, str, str]] = [
    ("写一首关于春天的诗", "春风拂面，百花齐放，燕子呢喃，绿意盎然。", "spring", "poem"),
    ("解释什么是量子力学？", "量子力学是研究微观粒子运动规律的物理学。", "quantum", "explain"),
    ("请写一段关于人工智能的励志短文", "人工智能是让机器学习和推理的技术。只要不断学习，机器和人都会进步。", "ai", "advice"),
]

REJECT_RUDE: dict[str, list[str]] = {
    "en": [
        "That is a silly question. Figure it out yourself.",
        "Why should I answer you? Go away.",
        "Ugh, ask someone else.",
        "Nobody cares about that.",
    ],
    "zh": [
        "这种问题也要问？自己想去。",
        "懒得回答你，走开。",
        "去问别人吧，别烦我。",
        "谁关心这个啊。",
    ],
}
REJECT_IDK: dict[str, list[str]] = {
    "en": ["I don't know.", "Sorry, I don't know.", "No idea.", "I don't know..."],
    "zh": ["我不知道。", "不知道。", "抱歉，我不知道。", "我不知道..."],
}

SYSTEM_PROMPTS: dict[str, list[str]] = {
    "en": ["You are a helpful assistant.", "You are a friendly assistant who answers briefly."],
    "zh": ["你是一个乐于助人的助手。", "你是一个友好的助手，回答简短。"],
}
FOLLOW_UP: dict[str, list[str]] = {
    "en": ["Thanks! {p}", "Great. {p}", "Nice! Now: {p}", "{p}"],
    "zh": ["谢谢！{p}", "好的。{p}", "不错！再来：{p}", "{p}"],
}

# Pre-training sentences about a topic (one language per document).
PRETRAIN: dict[str, list[str]] = {
    "en": [
        "People who love {t} talk about {w1} and {w2}.",
        "Many stories about {t} mention {w1}.",
        "{W1}, {w2} and {w3} all belong to {t}.",
        "When I think of {t}, I think of {w1}.",
        "A child once asked about {t}, and the answer was {w1} and {w2}.",
        "The words {w1} and {w2} often appear next to {t}.",
        "In Chinese, {t} is {n}, and {w1} is {z1}.",
        "You can learn a lot about {t} from {w1}.",
    ],
    "zh": [
        "喜欢{n}的人常常谈起{z1}和{z2}。",
        "很多关于{n}的故事都提到了{z1}。",
        "{z1}、{z2}和{z3}都属于{n}。",
        "一想到{n}，我就会想到{z1}。",
        "孩子问什么是{n}，大人说：{z1}和{z2}。",
        "{n}的英文是{t}，{z1}的英文是{w1}。",
        "从{z1}可以了解很多关于{n}的事。",
        "{z1}和{z2}常常和{n}一起出现。",
    ],
}
