"""The demo's topic inventory: each topic with its English/Chinese names, six aligned word pairs and a fact.

Answers in the demo data are built from a topic's own words, so a tiny model that learns the data
"stays on topic" by reusing the words of the topic it was asked about, and
:func:`rlhf_lightning.demo.corpus.is_on_topic` can check that by looking for those words.

The English and Chinese word lists are aligned (``en_words[i]`` translates to ``zh_words[i]``): the
translation tasks and the bilingual glossary lines of the pre-training corpus pair them up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    key: str  # stable identifier used in data files (``topic`` field)
    en: str  # English noun phrase as used inside prompts ("the moon", "cats")
    zh: str  # Chinese name ("月亮")
    en_words: tuple[str, ...]
    zh_words: tuple[str, ...]
    en_fact: str  # one full English sentence about the topic
    zh_fact: str  # the same in Chinese


# key | English name | Chinese name | English words | Chinese words | English fact | Chinese fact
_TABLE = """
spring|spring|春天|flowers;warm wind;swallows;green grass;blossoms;light rain|花朵;暖风;燕子;青草;花开;细雨|Spring is the season after winter, when plants wake up and grow again.|春天是冬天之后的季节，万物复苏，草木重新生长。
summer|summer|夏天|sunshine;cicadas;watermelon;lotus;heat;swimming|阳光;蝉鸣;西瓜;荷花;炎热;游泳|Summer is the hottest season of the year, with long and sunny days.|夏天是一年中最热的季节，白天很长，阳光灿烂。
autumn|autumn|秋天|falling leaves;harvest;cool wind;maple leaves;golden fields;wild geese|落叶;丰收;凉风;枫叶;金色的田野;大雁|Autumn is the season of harvest, when leaves turn red and gold and fall.|秋天是收获的季节，树叶变红变黄，纷纷飘落。
winter|winter|冬天|snow;cold wind;fireplace;ice;scarf;plum blossoms|雪花;寒风;火炉;冰;围巾;梅花|Winter is the coldest season, when snow falls and rivers freeze.|冬天是最冷的季节，雪花飘落，河水结冰。
moon|the moon|月亮|moonlight;full moon;night sky;silver light;tides;mid-autumn|月光;满月;夜空;银光;潮汐;中秋|The moon is the natural satellite of the earth; its silver light fills the night sky.|月亮是地球的卫星，它的银光洒满夜空。
sun|the sun|太阳|sunrise;rays;warmth;sunset;star;daylight|日出;光芒;温暖;日落;恒星;白天|The sun is the star at the center of our solar system and gives us light and heat.|太阳是太阳系中心的恒星，给我们带来光和热。
stars|the stars|星星|starlight;constellations;galaxy;night;twinkle;milky way|星光;星座;星系;夜晚;闪烁;银河|Stars are huge balls of burning gas that look like tiny lights in the night sky.|星星是燃烧的巨大气体球，在夜空中看起来像小小的灯。
ocean|the ocean|大海|waves;sea breeze;beach;salt water;whales;seagulls|海浪;海风;沙滩;海水;鲸鱼;海鸥|The ocean is the huge body of salt water that covers most of the earth.|大海是覆盖地球大部分的广阔咸水。
river|rivers|河流|flowing water;bridge;fish;riverbank;boat;stream|流水;桥;鱼;河岸;小船;溪流|A river is fresh water that flows from the mountains down to the sea.|河流是从高山流向大海的淡水。
mountains|mountains|高山|peaks;cliffs;clouds;pine trees;climbing;valley|山峰;悬崖;云雾;松树;登山;山谷|Mountains are high lands that rise far above the ground around them.|高山是远远高出周围地面的陆地。
forest|the forest|森林|trees;green leaves;deer;mushrooms;shade;birdsong|树木;绿叶;小鹿;蘑菇;树荫;鸟鸣|A forest is a large area covered with trees and full of wild life.|森林是长满树木、充满野生生命的大片土地。
rain|rain|雨|raindrops;umbrella;puddles;thunder;wet streets;rainbow|雨滴;雨伞;水坑;雷声;湿漉漉的街道;彩虹|Rain is water that falls from the clouds in small drops.|雨是从云中落下的小水滴。
wind|the wind|风|breeze;kite;storm;swaying trees;howling;drifting clouds|微风;风筝;风暴;摇动的树;呼啸;飘动的云|Wind is moving air that we cannot see but can feel.|风是流动的空气，我们看不见它，却能感觉到它。
garden|gardens|花园|roses;gardener;butterflies;soil;watering can;bees|玫瑰;园丁;蝴蝶;泥土;水壶;蜜蜂|A garden is a place where people grow flowers, fruit and vegetables.|花园是人们种花、种水果和蔬菜的地方。
cat|cats|猫|kitten;purring;whiskers;soft fur;mouse;nap|小猫;呼噜声;胡须;柔软的毛;老鼠;打盹|Cats are small furry animals that people keep as pets; they love to sleep and play.|猫是人们喜欢养的毛茸茸的小动物，爱睡觉也爱玩耍。
dog|dogs|狗|puppy;barking;wagging tail;loyal friend;bone;walk|小狗;汪汪叫;摇尾巴;忠诚的朋友;骨头;散步|Dogs are friendly animals that have lived with people for thousands of years.|狗是友好的动物，和人类一起生活了几千年。
birds|birds|鸟|feathers;wings;nest;songs;flying;eggs|羽毛;翅膀;鸟巢;歌声;飞翔;鸟蛋|Birds are animals with feathers and wings, and most of them can fly.|鸟是有羽毛和翅膀的动物，大多数都会飞。
horse|horses|马|galloping;mane;saddle;grassland;rider;hooves|奔跑;鬃毛;马鞍;草原;骑手;马蹄|Horses are strong and fast animals that people have ridden for a very long time.|马是强壮而快速的动物，人们骑马已经有很长的历史。
panda|pandas|熊猫|bamboo;black and white;cub;round face;Sichuan;gentle|竹子;黑白相间;熊猫宝宝;圆脸;四川;温顺|Pandas are black and white bears from China that eat bamboo.|熊猫是来自中国的黑白相间的熊，以竹子为食。
tea|tea|茶|tea leaves;teapot;green tea;hot water;fragrance;teacup|茶叶;茶壶;绿茶;热水;清香;茶杯|Tea is a drink made by pouring hot water over dried tea leaves.|茶是用热水冲泡干茶叶做成的饮品。
coffee|coffee|咖啡|coffee beans;bitter taste;cafe;milk;morning;mug|咖啡豆;苦味;咖啡馆;牛奶;早晨;马克杯|Coffee is a dark drink made from roasted coffee beans that helps people wake up.|咖啡是用烘焙过的咖啡豆做成的深色饮品，能让人提神。
rice|rice|米饭|rice fields;farmers;bowl;chopsticks;steam;grain|稻田;农民;碗;筷子;蒸汽;粮食|Rice is a grain grown in wet fields and eaten every day by billions of people.|米饭来自水田里种的稻米，几十亿人每天都吃。
dumplings|dumplings|饺子|dough;filling;new year;family;boiling water;vinegar|面皮;馅儿;新年;家人;开水;醋|Dumplings are pieces of dough wrapped around a filling and cooked in boiling water.|饺子是用面皮包上馅儿，再放进开水里煮熟的食物。
apple|apples|苹果|apple tree;red;sweet juice;orchard;crisp bite;fruit|苹果树;红色;甜甜的汁;果园;清脆;水果|Apples are round fruits that grow on trees and taste sweet and crisp.|苹果是长在树上的圆形水果，又甜又脆。
bread|bread|面包|flour;oven;bakery;butter;crust;wheat|面粉;烤箱;面包店;黄油;面包皮;小麦|Bread is food made from flour and water, baked in a hot oven.|面包是用面粉和水做成、在热烤箱里烤熟的食物。
computer|computers|电脑|keyboard;screen;software;programs;chips;data|键盘;屏幕;软件;程序;芯片;数据|A computer is a machine that follows programs to store and process information.|电脑是按照程序存储和处理信息的机器。
phone|mobile phones|手机|calls;messages;touch screen;camera;battery;apps|电话;短信;触摸屏;相机;电池;应用|A mobile phone is a small device for calling, sending messages and taking photos.|手机是用来打电话、发短信和拍照的小设备。
internet|the internet|互联网|websites;search;email;network;online;videos|网站;搜索;电子邮件;网络;在线;视频|The internet is a global network that connects computers all over the world.|互联网是连接全世界电脑的全球网络。
robot|robots|机器人|metal;sensors;motors;factory;robot arm;automatic|金属;传感器;电机;工厂;机械臂;自动|A robot is a machine that can sense the world and move by itself to do work.|机器人是能感知世界、自己动起来完成工作的机器。
ai|artificial intelligence|人工智能|machine learning;neural networks;algorithms;prediction;models;training data|机器学习;神经网络;算法;预测;模型;训练数据|Artificial intelligence is the technology that lets machines learn and reason.|人工智能是让机器学习和推理的技术。
train|trains|火车|railway;station;tickets;carriages;journey;engine|铁路;车站;车票;车厢;旅程;火车头|A train is a line of carriages that runs on rails and carries people far away.|火车是一节节车厢连在一起、在铁轨上行驶、载人远行的交通工具。
bicycle|bicycles|自行车|wheels;pedals;helmet;cycling;bell;chain|车轮;脚踏板;头盔;骑车;车铃;链条|A bicycle is a vehicle with two wheels that you move by pushing the pedals.|自行车是有两个轮子、靠踩脚踏板前进的交通工具。
gravity|gravity|引力|falling;weight;Newton;planets;orbit;earth|下落;重量;牛顿;行星;轨道;地球|Gravity is the force that pulls objects toward each other; it keeps our feet on the ground.|引力是让物体相互吸引的力，它让我们站在地面上。
magnet|magnets|磁铁|iron;attraction;compass;magnetic field;north pole;fridge|铁钉;吸引;指南针;磁场;北极;冰箱|A magnet is an object that pulls iron toward it with an invisible magnetic field.|磁铁是能用看不见的磁场把铁吸过来的物体。
photosynthesis|photosynthesis|光合作用|sunlight;leaves;carbon dioxide;oxygen;chlorophyll;sugar|光照;叶子;二氧化碳;氧气;叶绿素;糖分|Photosynthesis is how plants use sunlight, water and carbon dioxide to make food and oxygen.|光合作用是植物利用阳光、水和二氧化碳制造养分和氧气的过程。
volcano|volcanoes|火山|lava;eruption;smoke;ash;crater;hot rock|岩浆;喷发;浓烟;火山灰;火山口;炽热的岩石|A volcano is a mountain that opens to hot melted rock deep inside the earth.|火山是通向地球深处炽热熔岩的山。
dinosaurs|dinosaurs|恐龙|fossils;giant;extinct;skeletons;claws;millions of years|化石;巨大;灭绝;骨架;爪子;几百万年|Dinosaurs were giant reptiles that lived on earth millions of years ago.|恐龙是几百万年前生活在地球上的巨大爬行动物。
quantum|quantum mechanics|量子力学|particles;atoms;uncertainty;energy levels;probability;electrons|微观粒子;原子;不确定性;能级;概率;电子|Quantum mechanics is the physics of very small particles such as atoms and electrons.|量子力学是研究微观粒子运动规律的物理学。
time|time|时间|clock;hours;past;future;seconds;calendar|时钟;小时;过去;未来;秒;日历|Time is what we measure with clocks; it moves from the past into the future.|时间是我们用时钟测量的东西，它从过去流向未来。
friendship|friendship|友谊|friends;trust;laughter;help;sharing;kindness|朋友;信任;欢笑;帮助;分享;善意|Friendship is the warm bond between people who trust and help each other.|友谊是人与人之间相互信任、相互帮助的温暖情感。
family|family|家庭|parents;home;dinner table;hugs;children;grandmother|父母;家;餐桌;拥抱;孩子;奶奶|A family is a group of people who live together and care for each other.|家庭是一起生活、相互关心的一群人。
music|music|音乐|melody;drums;piano;rhythm;guitar;concert|旋律;鼓;钢琴;节奏;吉他;音乐会|Music is the art of arranging sounds into melody and rhythm.|音乐是把声音组织成旋律和节奏的艺术。
books|books|书|pages;library;stories;reading;writer;chapters|书页;图书馆;故事;阅读;作家;章节|A book is a set of printed pages that holds stories and knowledge.|书是装订在一起的书页，里面有故事和知识。
school|school|学校|teacher;classroom;students;homework;blackboard;lessons|老师;教室;学生;作业;黑板;课程|A school is a place where students learn from teachers.|学校是学生跟着老师学习的地方。
travel|travel|旅行|suitcase;map;passport;new places;hotel;adventure|行李箱;地图;护照;新的地方;旅馆;冒险|Travel means going to new places to see how other people live.|旅行就是去新的地方，看看别人是怎样生活的。
sports|sports|运动|running;football;team;exercise;sweat;match|跑步;足球;团队;锻炼;汗水;比赛|Sports are games and activities that keep the body strong and healthy.|运动是让身体强壮健康的游戏和活动。
sleep|sleep|睡眠|dreams;bed;pillow;rest;blanket;yawning|梦;床;枕头;休息;被子;哈欠|Sleep is the rest that our body and mind need every night.|睡眠是身体和大脑每晚都需要的休息。
happiness|happiness|幸福|smile;joy;gratitude;peace;small things;warm heart|微笑;快乐;感恩;平静;小事;温暖的心|Happiness is the feeling of joy and peace in your heart.|幸福是心中的快乐和平静。
cooking|cooking|做饭|kitchen;recipe;pan;spices;vegetables;taste|厨房;菜谱;锅;调料;蔬菜;味道|Cooking is turning raw food into a meal with heat and care.|做饭是用火和心思把生的食材变成一顿饭。
city|the city|城市|streets;tall buildings;traffic;neon lights;crowds;subway|街道;高楼;交通;霓虹灯;人群;地铁|A city is a large town where many people live and work.|城市是很多人生活和工作的大地方。
countryside|the countryside|乡村|fields;farm;cows;quiet;cottage;fresh air|田野;农场;奶牛;安静;小屋;新鲜空气|The countryside is the land outside cities, with farms, fields and fresh air.|乡村是城市之外有农场、田野和新鲜空气的地方。
desert|the desert|沙漠|sand dunes;camels;cactus;oasis;dry heat;mirage|沙丘;骆驼;仙人掌;绿洲;干热;海市蜃楼|A desert is a dry land with very little rain, covered with sand and rocks.|沙漠是雨水很少、布满沙子和岩石的干燥土地。
greatwall|the Great Wall|长城|bricks;watchtowers;ancient;soldiers;history;long walls|城砖;烽火台;古老;士兵;历史;城墙|The Great Wall is an ancient wall in China that stretches for thousands of kilometers.|长城是中国古老的城墙，绵延上万里。
festival|the Spring Festival|春节|fireworks;red lanterns;couplets;family reunion;red envelopes;lion dance|烟花;红灯笼;春联;团圆;红包;舞狮|The Spring Festival is the Chinese New Year, a time for family reunion and fireworks.|春节是中国的新年，是全家团圆、放烟花的日子。
"""


def _parse(table: str) -> tuple[Topic, ...]:
    topics = []
    for line in table.strip().splitlines():
        key, en, zh, en_words, zh_words, en_fact, zh_fact = line.split("|")
        ew, zw = tuple(en_words.split(";")), tuple(zh_words.split(";"))
        if len(ew) != len(zw):
            raise ValueError(f"topic {key!r}: {len(ew)} English words but {len(zw)} Chinese words")
        topics.append(Topic(key, en, zh, ew, zw, en_fact, zh_fact))
    return tuple(topics)


TOPICS: tuple[Topic, ...] = _parse(_TABLE)
BY_KEY: dict[str, Topic] = {t.key: t for t in TOPICS}
